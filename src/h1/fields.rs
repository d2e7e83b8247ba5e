//! The field model of the HTTP/1.1 codec: a head's header fields kept as received (the head's
//! bytes and where each field lies), each with a [`FieldRole`] decided once from its name, for
//! requests and responses alike ([`Fields`]); a view over either those or a `HeaderMap`
//! ([`FieldsView`]); the `Connection` token reader; field names from the wire.
//!
//! What the proxy does with the fields (which cross, what is added) is the proxy layer's
//! forwarding policy (`proxy::forward_headers`); writing a head is [`super::writer`].

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`, `-Host` and `-Server`, named once.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");

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
    /// A request field whose name has an `_` (`X_Forwarded_For`, `Transfer_Encoding`): CGI
    /// stacks map `-` and `_` to the same variable, so it can pose as the real field behind
    /// the proxy's back. Left out unless `UnderscoresInHeaders On` (nginx's default too).
    Underscored,
}

/// The role of a request field named `raw` (any case).
pub fn request_field_role(raw: &[u8]) -> FieldRole {
    let is = |s: &[u8]| raw.eq_ignore_ascii_case(s);
    match raw.len() {
        2 if is(b"te") => FieldRole::Hop,
        4 if is(b"host") => FieldRole::Host,
        // httpoxy (CVE-2016-5385): `Proxy` becomes HTTP_PROXY in CGI stacks. No request
        // needs it; it never crosses.
        5 if is(b"proxy") => FieldRole::Hop,
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
        _ if raw.contains(&b'_') => FieldRole::Underscored,
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

    /// The length of the head the fields lie in.
    #[inline]
    pub fn head_len(&self) -> usize {
        self.raw.len()
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
/// HTTP/1.1 connection, or in a `HeaderMap` (HTTP/2, or once rules needed a map).
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
    /// name several fields: use [`FieldsView::value`] for those).
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
            FieldRole::Other | FieldRole::Hop | FieldRole::Underscored => return None,
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

#[cfg(test)]
mod tests {
    use super::*;

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
