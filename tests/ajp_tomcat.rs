//! `ajp://` members against a real Tomcat (Debian's `tomcat10`, which `.ci/run` installs):
//! each test starts its own Tomcat instances (their own `CATALINA_BASE`, an AJP connector on
//! loopback with a `secret`, a `jvmRoute`, and a JSP that echoes what it received).

mod support;
use std::process::{Child, Command};
use std::time::Duration;
use support::*;

const CATALINA_HOME: &str = "/usr/share/tomcat10";

const JSP: &str = r#"<%@ page session="true" contentType="text/plain" %><%
java.io.InputStream in = request.getInputStream();
byte[] buf = new byte[65536]; long n = 0; int r;
while ((r = in.read(buf)) > 0) n += r;
out.print(request.getMethod() + " " + request.getRequestURI() + "?" + request.getQueryString() + " session=" + session.getId() + " body=" + n + " x-custom=" + request.getHeader("X-Custom"));
%>"#;

/// A Tomcat with an AJP connector on a free loopback port, stopped on drop.
struct Tomcat {
    child: Child,
    port: u16,
    base: tempfile::TempDir,
}

impl Tomcat {
    fn start(route: &str, secret: &str) -> Tomcat {
        assert!(
            std::path::Path::new(CATALINA_HOME)
                .join("bin/catalina.sh")
                .exists(),
            "{CATALINA_HOME} is missing: install Debian's tomcat10 (.ci/run does)"
        );
        let base = tempfile::tempdir().unwrap();
        let b = base.path();
        for d in ["conf", "logs", "temp", "work", "webapps/ROOT"] {
            std::fs::create_dir_all(b.join(d)).unwrap();
        }
        for f in ["web.xml", "catalina.properties", "logging.properties"] {
            std::fs::copy(format!("/etc/tomcat10/{f}"), b.join("conf").join(f)).unwrap();
        }
        let port = free_port();
        std::fs::write(
            b.join("conf/server.xml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector protocol="AJP/1.3" address="127.0.0.1" port="{port}" secret="{secret}" secretRequired="true" />
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="{route}">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false" />
    </Engine>
  </Service>
</Server>
"#
            ),
        )
        .unwrap();
        std::fs::write(b.join("webapps/ROOT/index.jsp"), JSP).unwrap();
        let child = Command::new(format!("{CATALINA_HOME}/bin/catalina.sh"))
            .arg("run")
            .env("CATALINA_HOME", CATALINA_HOME)
            .env("CATALINA_BASE", b)
            .stdout(std::fs::File::create(b.join("out.log")).unwrap())
            .stderr(std::fs::File::create(b.join("err.log")).unwrap())
            .spawn()
            .expect("start tomcat");
        let t = Tomcat { child, port, base };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return t;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "tomcat did not start: {}",
            std::fs::read_to_string(t.base.path().join("out.log")).unwrap_or_default()
        );
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// GET with a query and a custom header, a 20 KB `Content-Length` body (more than one AJP
/// packet: the container asks for the rest) and a chunked one, through a Tomcat AJP
/// connector that requires its `secret`; a wrong secret is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ajp_member_serves_gets_and_bodies_with_its_secret() {
    let tc = Tomcat::start("t1", "s3cret");
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\n<Proxy balancer://tc>\nBalancerMember ajp://127.0.0.1:{} route=t1 secret=s3cret\n</Proxy>\nProxyPass /app balancer://tc\nProxyPass /bad ajp://127.0.0.1:{}/ secret=wrong\n",
        tc.port, tc.port
    );
    let p = Proxy::start(&conf, &[]);
    let (a, _) = raw(
        p.addr,
        b"GET /app/index.jsp?a=1 HTTP/1.1\r\nHost: lb\r\nX-Custom: v1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(20),
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a}\n{}", p.log_text());
    assert!(
        body_of(&a).starts_with("GET /index.jsp?a=1 session="),
        "{a}"
    );
    assert!(body_of(&a).contains(".t1 body=0 x-custom=v1"), "{a}");
    let mut post = b"POST /app/index.jsp HTTP/1.1\r\nHost: lb\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n".to_vec();
    post.extend(std::iter::repeat_n(b'x', 20_000));
    let (a, _) = raw(p.addr, &post, Duration::from_secs(20)).await;
    assert!(body_of(&a).contains(" body=20000 "), "{a}");
    let mut chunked = b"POST /app/index.jsp HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..5 {
        chunked.extend_from_slice(b"1000\r\n");
        chunked.extend(std::iter::repeat_n(b'y', 4096));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (a, _) = raw(p.addr, &chunked, Duration::from_secs(20)).await;
    assert!(body_of(&a).contains(" body=20480 "), "{a}");
    let (a, _) = raw(
        p.addr,
        b"GET /bad/index.jsp HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        !a.starts_with("HTTP/1.1 200"),
        "a wrong secret is not served: {a}"
    );
}

/// Two Tomcats with `jvmRoute` t1 and t2: a session (`JSESSIONID=….tN`) sticks to the
/// Tomcat that made it, on pooled AJP connections; when that Tomcat stops, the request
/// fails over to the other, which starts a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsessionid_jvmroute_sticks_and_fails_over() {
    let t1 = Tomcat::start("t1", "s");
    let t2 = Tomcat::start("t2", "s");
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\n<Proxy balancer://tc>\nBalancerMember ajp://127.0.0.1:{} route=t1 secret=s\nBalancerMember ajp://127.0.0.1:{} route=t2 secret=s\nProxySet stickysession=JSESSIONID|jsessionid\n</Proxy>\nProxyPass /app balancer://tc\n",
        t1.port, t2.port
    );
    let p = Proxy::start(&conf, &[]);
    let (a, _) = raw(
        p.addr,
        b"GET /app/index.jsp HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
        Duration::from_secs(20),
    )
    .await;
    let session = body_of(&a)
        .split("session=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("{a}\n{}", p.log_text()))
        .to_string();
    let route = session.rsplit('.').next().unwrap().to_string();
    for _ in 0..6 {
        let req = format!(
            "GET /app/index.jsp HTTP/1.1\r\nHost: lb\r\nCookie: JSESSIONID={session}\r\nConnection: close\r\n\r\n"
        );
        let (a, _) = raw(p.addr, req.as_bytes(), Duration::from_secs(20)).await;
        assert!(
            body_of(&a).contains(&format!("session={session} ")),
            "sticks to {route}: {a}"
        );
    }
    let (owner, other) = if route == "t1" {
        (t1, "t2")
    } else {
        (t2, "t1")
    };
    drop(owner);
    let req = format!(
        "GET /app/index.jsp HTTP/1.1\r\nHost: lb\r\nCookie: JSESSIONID={session}\r\nConnection: close\r\n\r\n"
    );
    let (a, _) = raw(p.addr, req.as_bytes(), Duration::from_secs(20)).await;
    assert!(
        a.starts_with("HTTP/1.1 200"),
        "fails over: {a}\n{}",
        p.log_text()
    );
    assert!(
        body_of(&a).contains(&format!(".{other} ")),
        "served by {other}: {a}"
    );
}

/// `ping=`: each request first sends a CPing; a member that does not answer with a CPong in
/// time is put in error and the request, nothing of it sent yet, goes to the next member
/// (here a real Tomcat, which answers the CPing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ajp_ping_fails_over_from_a_silent_member() {
    let tc = Tomcat::start("t1", "s");
    // Accepts and reads, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = silent.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\n<Proxy balancer://tc>\nBalancerMember ajp://{silent_addr} route=s0 lbset=0 ping=1 secret=s\nBalancerMember ajp://127.0.0.1:{} route=t1 lbset=1 ping=1 secret=s\n</Proxy>\nProxyPass /app balancer://tc\n",
        tc.port
    );
    let p = Proxy::start(&conf, &[]);
    let started = std::time::Instant::now();
    let (a, _) = raw(
        p.addr,
        b"GET /app/index.jsp HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
        Duration::from_secs(20),
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a}\n{}", p.log_text());
    assert!(body_of(&a).contains(".t1 "), "served by the Tomcat: {a}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "the CPing waited ping=1 first: {took:?}"
    );
}
