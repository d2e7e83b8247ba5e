//! Route normalisation and matching on arbitrary request paths, for each
//! `AllowEncodedSlashes` setting: never a panic; a normalised path starts with `/` and has
//! no dot-segment left; the indexed matcher gives the linear scan's answer; and no path
//! forwarded under a tenant's prefix leaves that tenant's space on the member, even when
//! the member decodes it once and resolves its dot-segments.
#![no_main]
use balancerd::config::model::{EncodedSlashes, RouteMatch, RouteTarget};
use balancerd::route::{self, Matched, RouteIndex, RouteLike};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct R(RouteMatch, RouteTarget);
impl RouteLike for R {
    fn matcher(&self) -> &RouteMatch {
        &self.0
    }
    fn target(&self) -> &RouteTarget {
        &self.1
    }
}

fn routes() -> &'static (Vec<R>, RouteIndex) {
    static ROUTES: OnceLock<(Vec<R>, RouteIndex)> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let to = |b: usize, p: &str| RouteTarget::Balancer {
            balancer: b,
            path: p.to_string(),
        };
        let routes = vec![
            R(RouteMatch::Prefix("/t1/api/private".into()), RouteTarget::Exclude),
            R(RouteMatch::Prefix("/t1/api".into()), to(0, "/api")),
            R(RouteMatch::Prefix("/t1/rcs/".into()), to(1, "/rcs/")),
            R(RouteMatch::Prefix("/t2/api".into()), to(2, "/api")),
            R(RouteMatch::Prefix("/t2/recordings".into()), to(3, "/dav/t2")),
        ];
        let index = RouteIndex::build(&routes);
        (routes, index)
    })
}

/// `s` %-decoded once (as a member's server would), bytes kept when not an escape.
fn decode_once(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The member's view: dot-segments resolved (RFC 3986 §5.2.4); `None` when it climbs
/// above the root.
fn resolve(path: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut segs: Vec<Vec<u8>> = Vec::new();
    for seg in path.split(|&c| c == b'/' || c == b'\\') {
        match seg {
            b"" | b"." => {}
            b".." => {
                segs.pop()?;
            }
            s => segs.push(s.to_vec()),
        }
    }
    Some(segs)
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let (routes, index) = routes();
    for mode in [EncodedSlashes::Off, EncodedSlashes::On, EncodedSlashes::NoDecode] {
        let Ok(norm) = route::normalize_with(raw, mode) else {
            continue;
        };
        assert!(norm.starts_with('/'), "{raw:?} -> {norm:?}");
        for seg in norm.split('/') {
            assert!(seg != "." && seg != "..", "{raw:?} -> {norm:?}");
        }
        let linear = route::find(routes, &norm);
        let indexed = index.find(routes, &norm);
        assert_eq!(linear, indexed, "{raw:?} -> {norm:?}");
        if let Some(Matched::Balancer {
            target_path, rest, ..
        }) = linear
        {
            let mut fwd = String::from(target_path);
            if mode == EncodedSlashes::NoDecode {
                route::canon_encode_keep_2f(&mut fwd, rest);
            } else {
                route::canon_encode_into(&mut fwd, rest);
            }
            // The member decodes once and resolves: it must stay under the target path.
            let base = resolve(target_path.as_bytes()).unwrap_or_default();
            let seen = resolve(&decode_once(&fwd));
            let seen = seen.unwrap_or_else(|| panic!("{raw:?} -> {fwd:?} climbs above /"));
            assert!(
                seen.starts_with(&base),
                "{raw:?} -> {norm:?} -> {fwd:?} leaves {target_path:?}"
            );
        }
    }
});
