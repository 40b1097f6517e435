//! Parsing `--source-addrs`: a comma-separated list of local IP addresses and inclusive ranges
//! (`127.0.0.1,127.0.0.5-127.0.0.8`). Each source address has its own ~28k ephemeral ports, so
//! spreading chargers over several lifts the connection ceiling of one. Pure, no I/O.

use std::net::IpAddr;

/// More addresses than any sane run needs; guards against `10.0.0.0-10.255.255.255` typos.
pub const MAX_SOURCE_ADDRS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceAddrError {
    #[error("`{0}` is not an IP address")]
    NotAnAddress(String),
    #[error("range `{0}` mixes IPv4 and IPv6")]
    MixedFamilies(String),
    #[error("range `{0}` ends before it starts")]
    Reversed(String),
    #[error("more than {MAX_SOURCE_ADDRS} source addresses")]
    TooMany,
    #[error("no source address given")]
    Empty,
}

/// All addresses the spec names, in order, ranges expanded.
pub fn parse_source_addrs(spec: &str) -> Result<Vec<IpAddr>, SourceAddrError> {
    let mut addrs = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('-') {
            None => addrs.push(parse_ip(item)?),
            Some((first, last)) => expand(item, parse_ip(first)?, parse_ip(last)?, &mut addrs)?,
        }
        if addrs.len() > MAX_SOURCE_ADDRS {
            return Err(SourceAddrError::TooMany);
        }
    }
    if addrs.is_empty() {
        return Err(SourceAddrError::Empty);
    }
    Ok(addrs)
}

fn parse_ip(text: &str) -> Result<IpAddr, SourceAddrError> {
    text.trim()
        .parse()
        .map_err(|_| SourceAddrError::NotAnAddress(text.trim().to_owned()))
}

fn expand(
    item: &str,
    first: IpAddr,
    last: IpAddr,
    out: &mut Vec<IpAddr>,
) -> Result<(), SourceAddrError> {
    let (lo, hi, v4) = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), true)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), false),
        _ => return Err(SourceAddrError::MixedFamilies(item.to_owned())),
    };
    if hi < lo {
        return Err(SourceAddrError::Reversed(item.to_owned()));
    }
    if hi - lo >= (MAX_SOURCE_ADDRS - out.len()) as u128 {
        return Err(SourceAddrError::TooMany);
    }
    for n in lo..=hi {
        out.push(if v4 {
            // `n` lies between two u32 values.
            IpAddr::from(u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes())
        } else {
            IpAddr::from(n.to_be_bytes())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn lists_and_ranges() {
        assert_eq!(
            parse_source_addrs("127.0.0.1,127.0.0.2").unwrap(),
            ips(&["127.0.0.1", "127.0.0.2"])
        );
        assert_eq!(
            parse_source_addrs("127.0.0.1-127.0.0.4").unwrap(),
            ips(&["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"])
        );
        assert_eq!(
            parse_source_addrs(" 10.0.0.255-10.0.1.0 , ::1 ").unwrap(),
            ips(&["10.0.0.255", "10.0.1.0", "::1"])
        );
        assert_eq!(parse_source_addrs("::1-::2").unwrap(), ips(&["::1", "::2"]));
        assert_eq!(
            parse_source_addrs("127.0.0.9-127.0.0.9").unwrap(),
            ips(&["127.0.0.9"])
        );
    }

    #[test]
    fn errors() {
        use SourceAddrError::*;
        assert_eq!(parse_source_addrs(""), Err(Empty));
        assert_eq!(
            parse_source_addrs("127.0.0.1,localhost"),
            Err(NotAnAddress("localhost".into()))
        );
        assert_eq!(
            parse_source_addrs("127.0.0.4-127.0.0.1"),
            Err(Reversed("127.0.0.4-127.0.0.1".into()))
        );
        assert_eq!(
            parse_source_addrs("127.0.0.1-::1"),
            Err(MixedFamilies("127.0.0.1-::1".into()))
        );
        assert_eq!(parse_source_addrs("10.0.0.0-10.255.255.255"), Err(TooMany));
    }
}
