//! A blocking rtnetlink client: one request at a time, its acknowledgement or its dump.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Dumps of a busy host's neighbours or FDB arrive in large parts.
        sock.set_rx_buf_sz(1 << 20)?;
        Ok(Rtnl { sock, seq: 0, buf: vec![0; 1 << 16] })
    }

    /// Sends a request that changes something (with `flags` such as NLM_F_CREATE) and waits
    /// for the kernel's acknowledgement.
    pub fn change(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.exchange(msg, NLM_F_ACK | flags).map(drop)
    }

    /// Sends a request for one object and returns the reply.
    pub fn get(&mut self, msg: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        let mut replies = self.exchange(msg, NLM_F_ACK)?;
        replies.pop().ok_or_else(|| io::Error::other("rtnetlink: no reply"))
    }

    /// Dumps every object of the request's kind.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_DUMP)
    }

    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        send(&self.sock, msg, NLM_F_REQUEST | flags, self.seq)?;
        let mut out = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            for m in parse::<RouteNetlinkMessage>(&self.buf[..n]) {
                let m = m?;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }
}

fn send(sock: &Socket, inner: RouteNetlinkMessage, flags: u16, seq: u32) -> io::Result<()> {
    let mut nl = NetlinkMessage::from(inner);
    nl.header.flags = flags;
    nl.header.sequence_number = seq;
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    sock.send(&buf, 0)?;
    Ok(())
}

/// The messages in one datagram, each parsed or failing with a clear error.
pub fn parse<T: NetlinkDeserializable + std::fmt::Debug>(
    data: &[u8],
) -> impl Iterator<Item = io::Result<NetlinkMessage<T>>> + '_ {
    split(data).map(|m| NetlinkMessage::<T>::deserialize(m?).map_err(|e| io::Error::other(format!("rtnetlink: {e}"))))
}

/// The messages in one datagram, each as its bytes (header included), unparsed.
pub fn split(mut data: &[u8]) -> impl Iterator<Item = io::Result<&[u8]>> {
    std::iter::from_fn(move || {
        if data.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            data = &[];
            return Some(Err(io::Error::other("rtnetlink: truncated message")));
        }
        let msg = &data[..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some(Ok(msg))
    })
}
