//! Gateways are stateless: a ticket from one instance works on another sharing keys and store.

use reqwest::StatusCode;

use crate::helpers::{connect_stores, temp_dir, RedisServer, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_instance_a_works_on_instance_b() {
    let redis = RedisServer::start();
    let keys = temp_dir("shared-keys");
    let a = TestApp::spawn_with(connect_stores(&redis.url()).await, keys.clone(), None).await;
    let b = TestApp::spawn_with(connect_stores(&redis.url()).await, keys, None).await;
    a.open_event("sale", 300).await;

    let first = a.join_ok("sale").await;
    let second = b.join_ok("sale").await;
    assert_eq!((first.position, second.position), (1, 2));
    assert_eq!(b.position(&first.ticket).await, 1);
    assert_eq!(a.position(&second.ticket).await, 2);
    assert_eq!(b.leave(&first.ticket).await, StatusCode::NO_CONTENT);
    assert_eq!(a.position(&second.ticket).await, 1);
}
