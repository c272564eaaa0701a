//! Sans-io codecs: bytes in, values out, no sockets. `Incomplete` is normal
//! control flow. Used by the router and the workers alike.
//!
//! [`uwsgi`] is the packet codec, [`http`] reads request heads and decides
//! body framing, [`cgi`] turns a head into uWSGI's CGI variables,
//! [`chunked`] decodes chunked bodies, [`emperor`] names the bytes on the
//! emperor ⇄ vassal pipe.

pub mod cgi;
pub mod chunked;
pub mod emperor;
pub mod http;
pub mod uwsgi;
