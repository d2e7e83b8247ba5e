//! Request and response header handling on the way through (httpd-semantics §8):
//! hop-by-hop headers and every header named in `Connection` are removed *before*
//! `X-Forwarded-*` are appended (so a client cannot strip them: CVE-2022-31813).

use crate::h1::framing::BodyFraming;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`, `-Host` and `-Server`, named once.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");

/// What a header field is to the proxy, decided once from its raw name (any case) when the
/// head is parsed: by [`request_field_role`] for a request, by [`response_field_role`] for a
/// response (which uses only `Other`, `Date`, `ContentLength` and `Hop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRole {
    /// Any other field: passed on.
    Other,
    /// `Date` (a response's is passed on; the proxy adds none of its own).
    Date,
    /// `Host` (replaced by the member's, or kept with `ProxyPreserveHost`).
    Host,
    /// `Cookie` (sticky sessions).
    Cookie,
    /// `Connection` (hop-by-hop; may name more).
    Connection,
    /// `Upgrade` (hop-by-hop unless the upgrade is allowed).
    Upgrade,
    /// `Content-Length` (the upstream side sets the framing).
    ContentLength,
    /// `Transfer-Encoding` (likewise).
    TransferEncoding,
    /// `Expect` (only `100-continue` is passed on).
    Expect,
    /// `Max-Forwards` (decremented).
    MaxForwards,
    /// Hop-by-hop, never passed on as received: `TE`, `Trailer`, `Keep-Alive`,
    /// `Proxy-Connection` in a request; those and `Connection`, `Upgrade` (outside a `101`),
    /// `Transfer-Encoding` and `Proxy-Authenticate` in a response.
    Hop,
    /// `X-Forwarded-For`.
    ForwardedFor,
    /// `X-Forwarded-Host`.
    ForwardedHost,
    /// `X-Forwarded-Server`.
    ForwardedServer,
}

impl FieldRole {
    /// Never crosses the proxy towards a member as the client sent it (besides the fields
    /// named in `Connection`): `Host` is replaced, and `Content-Length`/`Transfer-Encoding`
    /// are set by the upstream connection from the body it actually sends.
    fn is_hop(self) -> bool {
        matches!(
            self,
            FieldRole::Connection
                | FieldRole::Upgrade
                | FieldRole::ContentLength
                | FieldRole::TransferEncoding
                | FieldRole::Host
                | FieldRole::Hop
        )
    }
}

/// The role of a request field named `raw` (any case).
pub fn request_field_role(raw: &[u8]) -> FieldRole {
    let is = |s: &[u8]| raw.eq_ignore_ascii_case(s);
    match raw.len() {
        2 if is(b"te") => FieldRole::Hop,
        4 if is(b"host") => FieldRole::Host,
        6 if is(b"cookie") => FieldRole::Cookie,
        6 if is(b"expect") => FieldRole::Expect,
        7 if is(b"upgrade") => FieldRole::Upgrade,
        7 if is(b"trailer") => FieldRole::Hop,
        10 if is(b"connection") => FieldRole::Connection,
        10 if is(b"keep-alive") => FieldRole::Hop,
        12 if is(b"max-forwards") => FieldRole::MaxForwards,
        14 if is(b"content-length") => FieldRole::ContentLength,
        15 if is(b"x-forwarded-for") => FieldRole::ForwardedFor,
        16 if is(b"x-forwarded-host") => FieldRole::ForwardedHost,
        16 if is(b"proxy-connection") => FieldRole::Hop,
        17 if is(b"transfer-encoding") => FieldRole::TransferEncoding,
        18 if is(b"x-forwarded-server") => FieldRole::ForwardedServer,
        _ => FieldRole::Other,
    }
}

/// A head's header fields as they arrived on an HTTP/1.1 connection, a request's or a
/// response's: the head's bytes and where each field lies in them, with its role. Most
/// messages are forwarded with their fields unchanged, so the next head is written from
/// here; a `HeaderMap` is built only for what needs one (rules, the access log,
/// `Max-Forwards`, response rewriting).
#[derive(Debug)]
pub struct Fields {
    raw: bytes::Bytes,
    fields: Vec<(FieldSpan, FieldRole)>,
}

impl Drop for Fields {
    fn drop(&mut self) {
        crate::util::recycle::give_vec(&FIELD_INDEXES, std::mem::take(&mut self.fields));
    }
}

thread_local! {
    /// Recycled index buffers for [`Fields`] of both kinds (see [`crate::util::recycle`]).
    static FIELD_INDEXES: std::cell::RefCell<Vec<Vec<(FieldSpan, FieldRole)>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Fields {
    /// Fields parsed (and so validated: httparse accepts exactly the names and values
    /// `http` accepts) from `raw`.
    pub fn new(raw: bytes::Bytes, fields: Vec<(FieldSpan, FieldRole)>) -> Self {
        Fields { raw, fields }
    }

    /// An empty index for `n` fields, in a buffer recycled on this thread when there is one
    /// (it goes back when the fields are dropped).
    pub fn index_for(n: usize) -> Vec<(FieldSpan, FieldRole)> {
        crate::util::recycle::take_vec(&FIELD_INDEXES, n)
    }

    /// Name (as received), value and role of each field, in order.
    #[inline]
    pub fn iter(&self) -> FieldIter<'_> {
        FieldIter::Raw(self.fields.iter(), &self.raw)
    }

    /// True when a field has this role.
    pub fn has(&self, role: FieldRole) -> bool {
        self.fields.iter().any(|(_, r)| *r == role)
    }

    /// The fields as a `HeaderMap` (values share the head's bytes).
    pub fn to_header_map(&self) -> HeaderMap {
        spans_to_header_map(
            &self.raw,
            self.fields.iter().map(|f| f.0),
            self.fields.len(),
        )
    }

    /// The fields passed on (hop-by-hop ones left out): name as received, value, role.
    pub fn passed(&self) -> impl Iterator<Item = (&[u8], &[u8], FieldRole)> {
        self.fields
            .iter()
            .filter(|(_, role)| *role != FieldRole::Hop)
            .map(|&(span, role)| {
                let (name, value) = span_field(&self.raw, span);
                (name, value, role)
            })
    }

    /// The fields passed on, as a `HeaderMap` (values share the head's bytes).
    pub fn passed_header_map(&self) -> HeaderMap {
        let passed = self
            .fields
            .iter()
            .filter(|(_, role)| *role != FieldRole::Hop);
        spans_to_header_map(&self.raw, passed.map(|f| f.0), self.fields.len())
    }
}

/// A field value as text, when it is UTF-8. Host and cookie values are read as text for
/// every request and are nearly always ASCII, which `is_ascii` confirms a word at a time;
/// `str::from_utf8` took ~120 instructions for a 14-byte Host.
#[inline]
pub fn field_str(v: &[u8]) -> Option<&str> {
    if v.is_ascii() {
        // SAFETY: ASCII bytes are UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(v) })
    } else {
        std::str::from_utf8(v).ok()
    }
}

/// Name and value of the field at `span` in `raw`.
#[inline]
pub fn span_field(raw: &[u8], (n0, n1, v0, v1): FieldSpan) -> (&[u8], &[u8]) {
    (
        &raw[n0 as usize..n1 as usize],
        &raw[v0 as usize..v1 as usize],
    )
}

/// A `HeaderMap` of the fields at `spans` in a parsed head (values share its bytes). The
/// parsers (httparse) accepted exactly the name and value characters `http` accepts.
pub fn spans_to_header_map(
    raw: &bytes::Bytes,
    spans: impl Iterator<Item = FieldSpan>,
    capacity: usize,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(capacity);
    for (n0, n1, v0, v1) in spans {
        let Some(name) = wire_header_name(&raw[n0 as usize..n1 as usize]) else {
            continue;
        };
        let Ok(value) = HeaderValue::from_maybe_shared(raw.slice(v0 as usize..v1 as usize)) else {
            continue;
        };
        h.append(name, value);
    }
    h
}

/// A request's header fields, whichever way they are held: as parsed on a plain
/// connection, or in hyper's `HeaderMap` (TLS, HTTP/2, or once rules needed a map).
#[derive(Debug, Clone, Copy)]
pub enum FieldsView<'a> {
    /// A `HeaderMap`.
    Map(&'a HeaderMap),
    /// The raw fields of a plain HTTP/1.1 request.
    Raw(&'a Fields),
}

impl<'a> FieldsView<'a> {
    /// Name, value and role of each field, in order (names lower-case from a map, as
    /// received from raw fields).
    #[inline]
    pub fn iter(self) -> FieldIter<'a> {
        match self {
            FieldsView::Map(m) => FieldIter::Map(m.iter()),
            FieldsView::Raw(r) => r.iter(),
        }
    }

    /// How many fields there are.
    pub fn len(self) -> usize {
        match self {
            FieldsView::Map(m) => m.len(),
            FieldsView::Raw(r) => r.fields.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The values of the fields with role `role` ([`FieldRole::Other`] and [`FieldRole::Hop`]
    /// name several fields: use [`FieldsView::values`] for those).
    #[inline]
    pub fn role_values(self, role: FieldRole) -> Values<'a> {
        match (self, role.header_name()) {
            (FieldsView::Map(m), Some(name)) => Values::Map(m.get_all(name).into_iter()),
            (FieldsView::Map(_), None) => Values::None,
            (FieldsView::Raw(r), _) => Values::Raw(r.fields.iter(), &r.raw, role),
        }
    }

    /// The first value of the field with role `role`.
    #[inline]
    pub fn role_value(self, role: FieldRole) -> Option<&'a [u8]> {
        match self {
            FieldsView::Map(m) => m.get(role.header_name()?).map(HeaderValue::as_bytes),
            FieldsView::Raw(r) => r
                .fields
                .iter()
                .find(|f| f.1 == role)
                .map(|f| span_field(&r.raw, f.0).1),
        }
    }

    /// The first value of the field named `name` (lower-case).
    pub fn value(self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|f| f.0.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| f.1)
    }
}

impl FieldRole {
    /// The field's name, for roles that name one field.
    fn header_name(self) -> Option<HeaderName> {
        Some(match self {
            FieldRole::Other | FieldRole::Hop => return None,
            FieldRole::Host => header::HOST,
            FieldRole::Date => header::DATE,
            FieldRole::Cookie => header::COOKIE,
            FieldRole::Connection => header::CONNECTION,
            FieldRole::Upgrade => header::UPGRADE,
            FieldRole::ContentLength => header::CONTENT_LENGTH,
            FieldRole::TransferEncoding => header::TRANSFER_ENCODING,
            FieldRole::Expect => header::EXPECT,
            FieldRole::MaxForwards => header::MAX_FORWARDS,
            FieldRole::ForwardedFor => X_FORWARDED_FOR,
            FieldRole::ForwardedHost => X_FORWARDED_HOST,
            FieldRole::ForwardedServer => X_FORWARDED_SERVER,
        })
    }
}

/// The fields of a [`FieldsView`]: name, value, role.
pub enum FieldIter<'a> {
    /// Over a map.
    Map(http::header::Iter<'a, HeaderValue>),
    /// Over raw fields and their head.
    Raw(std::slice::Iter<'a, (FieldSpan, FieldRole)>, &'a [u8]),
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = (&'a [u8], &'a [u8], FieldRole);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            FieldIter::Map(it) => it.next().map(|(k, v)| {
                let n = k.as_str().as_bytes();
                (n, v.as_bytes(), request_field_role(n))
            }),
            FieldIter::Raw(it, raw) => it.next().map(|&(span, role)| {
                let (name, value) = span_field(raw, span);
                (name, value, role)
            }),
        }
    }
}

/// The values of one field of a [`FieldsView`].
pub enum Values<'a> {
    /// From a map.
    Map(http::header::ValueIter<'a, HeaderValue>),
    /// From raw fields: those with the role.
    Raw(
        std::slice::Iter<'a, (FieldSpan, FieldRole)>,
        &'a [u8],
        FieldRole,
    ),
    /// None.
    None,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Values::Map(it) => it.next().map(HeaderValue::as_bytes),
            Values::Raw(it, raw, role) => it.find(|f| f.1 == *role).map(|f| span_field(raw, f.0).1),
            Values::None => None,
        }
    }
}

/// A header field name from the wire, with the fields nearly every request or response
/// carries recognised without the general lower-casing parse (~150 instructions each).
/// Shared by the client-side and member-side HTTP/1.1 parsers.
pub fn wire_header_name(raw: &[u8]) -> Option<HeaderName> {
    let known = match raw.len() {
        4 if raw.eq_ignore_ascii_case(b"host") => Some(header::HOST),
        4 if raw.eq_ignore_ascii_case(b"date") => Some(header::DATE),
        4 if raw.eq_ignore_ascii_case(b"etag") => Some(header::ETAG),
        4 if raw.eq_ignore_ascii_case(b"vary") => Some(header::VARY),
        6 if raw.eq_ignore_ascii_case(b"accept") => Some(header::ACCEPT),
        6 if raw.eq_ignore_ascii_case(b"cookie") => Some(header::COOKIE),
        6 if raw.eq_ignore_ascii_case(b"expect") => Some(header::EXPECT),
        6 if raw.eq_ignore_ascii_case(b"server") => Some(header::SERVER),
        7 if raw.eq_ignore_ascii_case(b"upgrade") => Some(header::UPGRADE),
        7 if raw.eq_ignore_ascii_case(b"expires") => Some(header::EXPIRES),
        8 if raw.eq_ignore_ascii_case(b"location") => Some(header::LOCATION),
        10 if raw.eq_ignore_ascii_case(b"user-agent") => Some(header::USER_AGENT),
        10 if raw.eq_ignore_ascii_case(b"connection") => Some(header::CONNECTION),
        10 if raw.eq_ignore_ascii_case(b"set-cookie") => Some(header::SET_COOKIE),
        12 if raw.eq_ignore_ascii_case(b"content-type") => Some(header::CONTENT_TYPE),
        13 if raw.eq_ignore_ascii_case(b"authorization") => Some(header::AUTHORIZATION),
        13 if raw.eq_ignore_ascii_case(b"cache-control") => Some(header::CACHE_CONTROL),
        13 if raw.eq_ignore_ascii_case(b"last-modified") => Some(header::LAST_MODIFIED),
        14 if raw.eq_ignore_ascii_case(b"content-length") => Some(header::CONTENT_LENGTH),
        15 if raw.eq_ignore_ascii_case(b"accept-encoding") => Some(header::ACCEPT_ENCODING),
        15 if raw.eq_ignore_ascii_case(b"accept-language") => Some(header::ACCEPT_LANGUAGE),
        17 if raw.eq_ignore_ascii_case(b"transfer-encoding") => Some(header::TRANSFER_ENCODING),
        _ => None,
    };
    known.or_else(|| HeaderName::from_bytes(raw).ok())
}

/// Where a parsed field's name and value lie in the head: byte offsets `(name start, name
/// end, value start, value end)`, so that values can become slices of the head once it is
/// split off the read buffer (no copy).
pub type FieldSpan = (u32, u32, u32, u32);

/// The span of one parsed field, in a head that starts at address `base`.
pub fn field_span(h: &httparse::Header<'_>, base: usize) -> FieldSpan {
    let n0 = h.name.as_ptr() as usize - base;
    let v0 = h.value.as_ptr() as usize - base;
    (
        n0 as u32,
        (n0 + h.name.len()) as u32,
        v0 as u32,
        (v0 + h.value.len()) as u32,
    )
}

/// Records the spans of `fields` (parsed from a buffer starting at address `base`) into
/// `spans`, which needs no initialising (a zeroed array of 128 spans cost a 2 KiB memset per
/// request); returns the spans written.
pub fn field_spans<'s>(
    fields: &[httparse::Header<'_>],
    base: usize,
    spans: &'s mut [std::mem::MaybeUninit<FieldSpan>],
) -> &'s [FieldSpan] {
    let n = fields.len().min(spans.len());
    for (slot, h) in spans.iter_mut().zip(fields) {
        slot.write(field_span(h, base));
    }
    // SAFETY: the first `n` slots were written just above; MaybeUninit<T> has T's layout.
    unsafe { std::slice::from_raw_parts(spans.as_ptr().cast::<FieldSpan>(), n) }
}

/// One token of a `Connection` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionToken<'a> {
    /// `close`.
    Close,
    /// `keep-alive`.
    KeepAlive,
    /// `upgrade`.
    Upgrade,
    /// An empty list element.
    Other,
    /// Any other token: the name of a hop-by-hop field.
    Named(&'a [u8]),
}

/// The tokens of a `Connection` value, classified (shared by requests and responses).
pub fn connection_tokens(v: &[u8]) -> impl Iterator<Item = ConnectionToken<'_>> {
    v.split(|b| *b == b',').map(|t| {
        let t = t.trim_ascii();
        if t.eq_ignore_ascii_case(b"close") {
            ConnectionToken::Close
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            ConnectionToken::KeepAlive
        } else if t.eq_ignore_ascii_case(b"upgrade") {
            ConnectionToken::Upgrade
        } else if t.is_empty() {
            ConnectionToken::Other
        } else {
            ConnectionToken::Named(t)
        }
    })
}

/// What the request to a member needs besides the client's headers, as ready-made bytes
/// (per member, per connection, per snapshot) so that writing the member's head formats
/// nothing.
pub struct UpstreamHead<'a> {
    /// The `Host` to send.
    pub host: Option<&'a [u8]>,
    /// Append X-Forwarded-For/-Host/-Server.
    pub add_forwarded: bool,
    /// Client address for X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// The client's Host, for X-Forwarded-Host.
    pub client_host: Option<&'a [u8]>,
    /// ServerName, for X-Forwarded-Server.
    pub server_name: &'a [u8],
    /// `disablereuse=On`: send `Connection: close`.
    pub close: bool,
    /// A WebSocket upgrade is allowed and requested: the protocol asked for.
    pub upgrade: Option<&'a [u8]>,
    /// A header (lower-case name) whose client value is replaced (the mapped WebDAV
    /// `Destination`).
    pub replace: Option<(&'a str, &'a [u8])>,
}

/// Writes the member-bound header fields straight from the client's into the request head
/// (no intermediate header map): hop-by-hop fields and those named in `Connection` are
/// left out, `Host` is the member's (or the client's with `ProxyPreserveHost`), and the
/// X-Forwarded-* lists get the client's address, host and this server appended on one line.
pub fn write_upstream_headers(client: FieldsView<'_>, u: &UpstreamHead<'_>, w: &mut HeadWriter) {
    // Extra names listed in Connection (rare): left out as hop-by-hop.
    let mut named: Vec<&[u8]> = Vec::new();
    for v in client.role_values(FieldRole::Connection) {
        for t in connection_tokens(v) {
            if let ConnectionToken::Named(n) = t {
                named.push(n);
            }
        }
    }
    if let Some(host) = u.host {
        w.header(b"host", host);
    }
    let mut forwarded_seen = false;
    for (k, v, role) in client.iter() {
        if role.is_hop() || (!named.is_empty() && named.iter().any(|n| n.eq_ignore_ascii_case(k))) {
            continue;
        }
        match role {
            FieldRole::Expect if !v.eq_ignore_ascii_case(b"100-continue") => continue,
            FieldRole::ForwardedFor | FieldRole::ForwardedHost | FieldRole::ForwardedServer
                if u.add_forwarded =>
            {
                forwarded_seen = true;
                continue;
            }
            _ => {}
        }
        if let Some((rk, _)) = u.replace
            && k.eq_ignore_ascii_case(rk.as_bytes())
        {
            continue;
        }
        w.header(k, v);
    }
    if let Some((rk, rv)) = u.replace {
        w.header(rk.as_bytes(), rv);
    }
    if u.add_forwarded {
        let forwarded = [
            (X_FORWARDED_FOR, FieldRole::ForwardedFor, Some(u.client_ip)),
            (X_FORWARDED_HOST, FieldRole::ForwardedHost, u.client_host),
            (
                X_FORWARDED_SERVER,
                FieldRole::ForwardedServer,
                Some(u.server_name),
            ),
        ];
        for (name, role, ours) in forwarded {
            w.list_header(
                name.as_str().as_bytes(),
                forwarded_seen
                    .then(|| client.role_values(role))
                    .into_iter()
                    .flatten(),
                ours,
            );
        }
    }
    if let Some(up) = u.upgrade {
        w.header(b"upgrade", up);
        w.header(b"connection", b"Upgrade");
    } else if u.close {
        w.header(b"connection", b"close");
    }
}

/// The request head being written for a member: request line, then header fields.
pub struct HeadWriter {
    out: Vec<u8>,
    /// Where the request target lies in `out`.
    target: std::ops::Range<usize>,
}

impl HeadWriter {
    /// Starts a head with its request line; `room` is the expected size of the fields.
    pub fn new(method: &http::Method, target: &str, room: usize) -> Self {
        Self::with_target(method, &[target.as_bytes()], room)
    }

    /// Starts a head whose request target is `target`'s pieces joined (the member's base
    /// path, the forwarded path, the query): written in place, never assembled apart.
    pub fn with_target(method: &http::Method, target: &[&[u8]], room: usize) -> Self {
        let target_len: usize = target.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(method.as_str().len() + target_len + room + 64);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        let start = out.len();
        for piece in target {
            out.extend_from_slice(piece);
        }
        let target = start..out.len();
        out.extend_from_slice(b" HTTP/1.1\r\n");
        HeadWriter { out, target }
    }

    /// The request target as written (between the method and the version).
    pub fn target(&self) -> &[u8] {
        self.out.get(self.target.clone()).unwrap_or(&[])
    }

    /// Room to reserve for `client`'s fields plus the few balancerd adds.
    pub fn room_for(client: FieldsView<'_>) -> usize {
        match client {
            FieldsView::Raw(r) => r.raw.len() + 160,
            FieldsView::Map(m) => {
                m.iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum::<usize>()
                    + 160
            }
        }
    }

    /// One field.
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A list field: the client's values and ours joined with ", " on one line (httpd's
    /// apr_table_mergen); nothing when there are none.
    pub fn list_header<'v>(
        &mut self,
        name: &[u8],
        theirs: impl Iterator<Item = &'v [u8]>,
        ours: Option<&'v [u8]>,
    ) {
        let start = self.out.len();
        let mut first = true;
        for v in theirs.chain(ours) {
            if first {
                self.out.extend_from_slice(name);
                self.out.extend_from_slice(b": ");
                first = false;
            } else {
                self.out.extend_from_slice(b", ");
            }
            self.out.extend_from_slice(v);
        }
        if self.out.len() > start {
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Ends the head: the body framing field (`content-length: N`, `transfer-encoding:
    /// chunked`, or none) and the blank line. The head stays a `Vec`: it is only ever
    /// borrowed for writing, and `Bytes::from` a `Vec` with spare room allocates.
    pub fn finish(mut self, framing: BodyFraming) -> Vec<u8> {
        match framing {
            BodyFraming::None | BodyFraming::UntilClose => {}
            BodyFraming::Length(n) => {
                let mut digits = [0u8; 20];
                let mut i = digits.len();
                let mut v = n;
                loop {
                    i -= 1;
                    digits[i] = b'0' + (v % 10) as u8;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                self.header(b"content-length", &digits[i..]);
            }
            BodyFraming::Chunked => self
                .out
                .extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        self.out.extend_from_slice(b"\r\n");
        self.out
    }
}

/// The role of a response field named `raw` (any case): the one list of hop-by-hop
/// response fields (`Content-Length` stays; a `101` keeps its `Upgrade`/`Connection` pair).
pub fn response_field_role(raw: &[u8], switching: bool) -> FieldRole {
    let is = |s: &[u8]| raw.eq_ignore_ascii_case(s);
    match raw.len() {
        2 if is(b"te") => FieldRole::Hop,
        4 if is(b"date") => FieldRole::Date,
        7 if is(b"trailer") => FieldRole::Hop,
        7 if is(b"upgrade") && !switching => FieldRole::Hop,
        10 if is(b"connection") && !switching => FieldRole::Hop,
        10 if is(b"keep-alive") => FieldRole::Hop,
        14 if is(b"content-length") => FieldRole::ContentLength,
        16 if is(b"proxy-connection") => FieldRole::Hop,
        17 if is(b"transfer-encoding") => FieldRole::Hop,
        18 if is(b"proxy-authenticate") => FieldRole::Hop,
        _ => FieldRole::Other,
    }
}

/// `Max-Forwards`: decremented; `0` (or garbage) refuses the request (400), except for
/// TRACE/OPTIONS. Returns false when refused.
pub fn max_forwards(h: &mut HeaderMap, method: &http::Method) -> bool {
    let Some(v) = h.get(header::MAX_FORWARDS) else {
        return true;
    };
    let Some(n) = v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) else {
        return false;
    };
    if n == 0 {
        return method == http::Method::TRACE || method == http::Method::OPTIONS;
    }
    h.insert(header::MAX_FORWARDS, HeaderValue::from(n - 1));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_target_is_written_from_its_pieces_and_read_back() {
        let mut w = HeadWriter::with_target(
            &http::Method::PUT,
            &[b"/base", b"/rec ord", b"?", b"q=1"],
            0,
        );
        assert_eq!(w.target(), b"/base/rec ord?q=1");
        w.header(b"host", b"h");
        // Still the target once fields follow it.
        assert_eq!(w.target(), b"/base/rec ord?q=1");
        let head = w.finish(BodyFraming::Length(0));
        assert_eq!(
            head,
            b"PUT /base/rec ord?q=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
        );
    }

    /// The member-bound head for `c`, parsed back into (name, value) lines.
    fn member_head(c: &HeaderMap, u: &UpstreamHead<'_>) -> Vec<(String, String)> {
        member_head_of(FieldsView::Map(c), u)
    }

    fn member_head_of(c: FieldsView<'_>, u: &UpstreamHead<'_>) -> Vec<(String, String)> {
        let mut w = HeadWriter::new(&http::Method::GET, "/x", HeadWriter::room_for(c));
        write_upstream_headers(c, u, &mut w);
        let head = w.finish(BodyFraming::None);
        let text = String::from_utf8(head.to_vec()).unwrap();
        assert!(text.starts_with("GET /x HTTP/1.1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        text.lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn one<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        let mut it = h.iter().filter(|(k, _)| k == name);
        let v = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "{name} more than once");
        v
    }

    /// The fields of a raw request head, as the plain HTTP/1.1 server parses them.
    fn raw_fields(head: &'static str) -> Fields {
        let raw = bytes::Bytes::from_static(head.as_bytes());
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Request::new(&mut slots);
        assert!(r.parse(&raw).unwrap().is_complete());
        let base = raw.as_ptr() as usize;
        let fields = r
            .headers
            .iter()
            .map(|h| (field_span(h, base), request_field_role(h.name.as_bytes())))
            .collect();
        Fields::new(raw.clone(), fields)
    }

    fn head<'a>(ip: &'a [u8], lb: &'a [u8]) -> UpstreamHead<'a> {
        UpstreamHead {
            host: None,
            add_forwarded: true,
            client_ip: ip,
            client_host: None,
            server_name: lb,
            close: false,
            upgrade: None,
            replace: None,
        }
    }

    #[test]
    fn strips_connection_named_before_forwarded() {
        let mut c = HeaderMap::new();
        c.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Foo, X-Forwarded-For"),
        );
        c.insert("x-foo", HeaderValue::from_static("1"));
        c.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        c.insert("te", HeaderValue::from_static("trailers"));
        c.insert("upgrade", HeaderValue::from_static("h2c"));
        c.insert("keep-alive", HeaderValue::from_static("5"));
        c.insert("proxy-connection", HeaderValue::from_static("x"));
        c.insert("host", HeaderValue::from_static("front"));
        c.insert("content-length", HeaderValue::from_static("12"));
        c.insert("x-keep", HeaderValue::from_static("yes"));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head(
            &c,
            &UpstreamHead {
                host: Some(b"127.0.0.1:18102"),
                client_host: Some(b"front"),
                ..head(ip, lb)
            },
        );
        for n in [
            "x-foo",
            "te",
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "connection",
            "content-length",
        ] {
            assert!(one(&h, n).is_none(), "{n}");
        }
        assert_eq!(one(&h, "x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(one(&h, "host"), Some("127.0.0.1:18102"));
        assert_eq!(one(&h, "x-forwarded-host"), Some("front"));
        assert_eq!(one(&h, "x-forwarded-server"), Some("lb"));
        assert_eq!(one(&h, "x-keep"), Some("yes"));
    }

    /// Raw fields (the plain server's) get the same treatment as a map's, in any case
    /// spelling, and keep the client's spelling of the names they pass on.
    #[test]
    fn raw_fields_are_forwarded_like_a_map() {
        let f = raw_fields(
            "GET /x HTTP/1.1\r\nHost: front\r\nConnection: Keep-Alive, X-Foo\r\n\
             X-Foo: 1\r\nX-Forwarded-For: 10.0.0.1\r\nTE: trailers\r\nUpgrade: h2c\r\n\
             Keep-Alive: 5\r\nContent-Length: 12\r\nX-Keep: yes\r\nexpect: 100-continue\r\n\
             Cookie: a=1\r\ncookie: ROUTEID=.r2\r\nX-FORWARDED-for: 10.0.0.2\r\n\r\n",
        );
        let c = FieldsView::Raw(&f);
        assert_eq!(c.len(), 13);
        assert_eq!(c.role_value(FieldRole::Host), Some(b"front".as_slice()));
        assert_eq!(
            c.role_values(FieldRole::Cookie).collect::<Vec<_>>(),
            [b"a=1".as_slice(), b"ROUTEID=.r2"]
        );
        assert_eq!(c.value("x-keep"), Some(b"yes".as_slice()));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head_of(
            c,
            &UpstreamHead {
                host: Some(b"member:80"),
                client_host: c.role_value(FieldRole::Host),
                ..head(ip, lb)
            },
        );
        for n in [
            "X-Foo",
            "TE",
            "Upgrade",
            "Keep-Alive",
            "Connection",
            "Content-Length",
        ] {
            assert!(
                !h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n)),
                "{n} passed: {h:?}"
            );
        }
        assert_eq!(one(&h, "host"), Some("member:80"));
        assert_eq!(one(&h, "X-Keep"), Some("yes"));
        assert_eq!(one(&h, "expect"), Some("100-continue"));
        assert_eq!(
            one(&h, "x-forwarded-for"),
            Some("10.0.0.1, 10.0.0.2, 127.0.0.1")
        );
        assert_eq!(one(&h, "x-forwarded-host"), Some("front"));
        // The map built for rules holds the same fields.
        let m = f.to_header_map();
        assert_eq!(m.len(), 13);
        assert_eq!(m.get_all("cookie").iter().count(), 2);
    }

    #[test]
    fn forwarded_lists_are_joined_on_one_line() {
        let mut c = HeaderMap::new();
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        c.append("x-forwarded-server", HeaderValue::from_static("edge"));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head(&c, &head(ip, lb));
        assert_eq!(
            one(&h, "x-forwarded-for"),
            Some("10.0.0.1, 10.0.0.2, 127.0.0.1")
        );
        assert_eq!(one(&h, "x-forwarded-server"), Some("edge, lb"));
        assert!(one(&h, "x-forwarded-host").is_none());
        assert!(one(&h, "host").is_none(), "no Host when none is given");
    }

    #[test]
    fn replaced_header_and_upgrade_and_close() {
        let mut c = HeaderMap::new();
        c.insert("destination", HeaderValue::from_static("http://front/a"));
        c.insert("expect", HeaderValue::from_static("100-continue"));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head(
            &c,
            &UpstreamHead {
                add_forwarded: false,
                replace: Some(("destination", b"http://member/a")),
                upgrade: Some(b"websocket"),
                ..head(ip, lb)
            },
        );
        assert_eq!(one(&h, "destination"), Some("http://member/a"));
        assert_eq!(one(&h, "expect"), Some("100-continue"));
        assert_eq!(one(&h, "upgrade"), Some("websocket"));
        assert_eq!(one(&h, "connection"), Some("Upgrade"));
        assert!(one(&h, "x-forwarded-for").is_none());
        let h = member_head(
            &c,
            &UpstreamHead {
                close: true,
                ..head(ip, lb)
            },
        );
        assert_eq!(one(&h, "connection"), Some("close"));
    }

    #[test]
    fn response_loses_hop_by_hop_but_keeps_upgrade_pair_of_101() {
        for name in [
            "Connection",
            "keep-alive",
            "Transfer-Encoding",
            "TE",
            "Trailer",
            "Upgrade",
        ] {
            assert_eq!(
                response_field_role(name.as_bytes(), false),
                FieldRole::Hop,
                "{name}"
            );
        }
        assert_eq!(
            response_field_role(b"Content-Length", false),
            FieldRole::ContentLength
        );
        assert_eq!(response_field_role(b"x-secret", false), FieldRole::Other);
        assert_eq!(response_field_role(b"upgrade", true), FieldRole::Other);
        assert_eq!(response_field_role(b"connection", true), FieldRole::Other);
        assert_eq!(response_field_role(b"keep-alive", true), FieldRole::Hop);
    }
}
