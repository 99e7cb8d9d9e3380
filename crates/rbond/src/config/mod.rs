//! Configuration the Debian way: the interfaces(5) file and what Debian's ifenslave scripts
//! make of it. Pure: nothing here touches the network.

pub mod addressing;
pub mod bond;
pub mod examples;
pub mod interfaces;
pub mod lint;
