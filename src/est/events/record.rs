//! TFRecord framing: `u64` length, masked CRC-32C of the length, the data, masked CRC-32C of the
//! data, all little-endian. The CRC comes from the maintained `crc32c` crate; the frame itself
//! is four fields, written here.

use std::io::{self, Read, Write};

const MASK_DELTA: u32 = 0xa282_ead8;

/// TensorFlow's masking, so a CRC of data that contains CRCs does not look like one.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

pub fn write(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    let mut frame = Vec::with_capacity(data.len() + 16);
    frame.extend_from_slice(&len);
    frame.extend_from_slice(&masked_crc(&len).to_le_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(&masked_crc(data).to_le_bytes());
    // One write per record: a killed process leaves whole records, or a torn last one.
    out.write_all(&frame)
}

/// Every whole record in `input`; a torn record at the end (a killed writer) ends the list,
/// a record whose checksum fails is an error.
pub fn read_all(input: &mut impl Read) -> io::Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 12 {
        let len_bytes = &bytes[at..at + 8];
        let crc = u32::from_le_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        if masked_crc(len_bytes) != crc {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad length checksum at byte {at}")));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8])) as usize;
        let start = at + 12;
        let Some(end) = start.checked_add(len).filter(|e| e + 4 <= bytes.len()) else { break };
        let data = &bytes[start..end];
        let crc = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        if masked_crc(data) != crc {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad data checksum at byte {at}")));
        }
        records.push(data.to_vec());
        at = end + 4;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_masking_match_tensorflow() {
        // CRC-32C of "123456789" is the standard check value 0xe3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut out = Vec::new();
        write(&mut out, b"first").unwrap();
        write(&mut out, b"").unwrap();
        write(&mut out, b"third record").unwrap();
        let whole = read_all(&mut out.as_slice()).unwrap();
        assert_eq!(whole, vec![b"first".to_vec(), vec![], b"third record".to_vec()]);
        let torn = &out[..out.len() - 3];
        assert_eq!(read_all(&mut &torn[..]).unwrap().len(), 2);
        let mut flipped = out.clone();
        flipped[14] ^= 1;
        assert!(read_all(&mut flipped.as_slice()).is_err());
    }
}
