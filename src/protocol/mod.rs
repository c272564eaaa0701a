//! Sans-io codecs: bytes in, values out, no sockets. `Incomplete` is normal
//! control flow. Used by the router and the workers alike.

pub mod emperor;
pub mod http;
pub mod uwsgi;
