// Verify a Vestibule admission token in a Node sale backend, offline, with jose:
//   npm install jose
// createRemoteJWKSet fetches the gateway's JWKS, caches it and fetches again when a token names
// a key it has not seen (a rotation). Usage: node verify.mjs <jwks_url> <event> <token> prints
// the claims, or exits 1 with the reason.

import { createRemoteJWKSet, jwtVerify } from 'jose';

export async function verify(jwks, event, token) {
  const { payload } = await jwtVerify(token, jwks, { algorithms: ['EdDSA'], requiredClaims: ['exp', 'sub', 'jti'] });
  if (payload.ev !== event) throw new Error(`an admission to ${payload.ev}, not ${event}`);
  return payload;
}

const [jwksUrl, event, token] = process.argv.slice(2);
try {
  console.log(JSON.stringify(await verify(createRemoteJWKSet(new URL(jwksUrl)), event, token)));
} catch (err) {
  console.error(`refused: ${err.message}`);
  process.exit(1);
}
