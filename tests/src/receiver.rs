//! An HTTP receiver of the tests' own, for webhooks and the SMS provider: it records every
//! request (headers and raw body) and answers with the statuses it is told, 200 otherwise.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status it was answered with.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

#[derive(Default)]
struct Plan {
    /// Statuses for the next requests, in order.
    next: VecDeque<u16>,
    /// The status once `next` is empty (200 when unset).
    always: Option<u16>,
    /// How long each answer waits.
    delay: Duration,
    received: Vec<Received>,
}

pub struct Receiver {
    pub url: String,
    plan: Arc<Mutex<Plan>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Self {
        let plan = Arc::new(Mutex::new(Plan::default()));
        let shared = web::Data::new(plan.clone());
        let server = HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(receive)))
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("cannot bind the receiver");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url: format!("http://{addr}"), plan, handle }
    }

    /// The next requests are answered with these statuses, in order.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.plan.lock().unwrap().next.extend(statuses.iter().copied());
    }

    /// Every later request is answered with `status` (once the planned ones are used up).
    pub fn answer_always(&self, status: u16) {
        self.plan.lock().unwrap().always = Some(status);
    }

    /// Each answer waits this long first.
    pub fn delay(&self, delay: Duration) {
        self.plan.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.plan.lock().unwrap().received.clone()
    }

    /// Waits (bounded) until at least `n` requests answered 2xx arrived; returns all requests.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        crate::eventually(timeout, &format!("{n} accepted requests"), || async {
            let all = self.received();
            (all.iter().filter(|r| (200..300).contains(&r.answered)).count() >= n).then_some(all)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { handle.stop(false).await });
        }
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, plan: web::Data<Arc<Mutex<Plan>>>) -> HttpResponse {
    let (status, delay) = {
        let mut plan = plan.lock().unwrap();
        let status = plan.next.pop_front().or(plan.always).unwrap_or(200);
        (status, plan.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    plan.lock().unwrap().received.push(Received {
        path: req.path().to_owned(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
        answered: status,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("{}")
}
