//! The stored form of a [`Histogram`] (SQLite BLOBs): a version byte, exact min and max, then
//! only the non-empty buckets as (index delta, count) LEB128 varints — a minute rollup with a
//! handful of distinct latencies is ~25 bytes. Reading validates everything and never panics;
//! it must not trust a blob's counts to fit or its indexes to be in range.
use super::{BUCKETS, Histogram, HistogramError};

/// Version byte of the serialised form.
const FORMAT: u8 = 1;

impl Histogram {
    /// Sparse serialisation: version, min, max, then (bucket delta, count) varint pairs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.counts.len() * 2);
        out.push(FORMAT);
        let (min, max) = if self.total == 0 {
            (0.0, 0.0)
        } else {
            (self.min_ms, self.max_ms)
        };
        out.extend_from_slice(&min.to_le_bytes());
        out.extend_from_slice(&max.to_le_bytes());
        let nonzero = self.counts.iter().filter(|c| **c > 0).count();
        put_varint(&mut out, nonzero as u64);
        let mut prev = 0usize;
        for (k, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                let i = self.offset + k;
                put_varint(&mut out, (i - prev) as u64);
                put_varint(&mut out, c);
                prev = i;
            }
        }
        out
    }

    /// Reads the form written by [`Histogram::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Histogram, HistogramError> {
        let mut h = Histogram::new();
        h.merge_bytes(bytes)?;
        Ok(h)
    }

    /// Adds a serialised histogram to this one without building it first.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<(), HistogramError> {
        let (&version, rest) = bytes.split_first().ok_or(HistogramError::Truncated)?;
        if version != FORMAT {
            return Err(HistogramError::Version(version));
        }
        let mut r = Reader { bytes: rest };
        let min = f64::from_le_bytes(r.array()?);
        let max = f64::from_le_bytes(r.array()?);
        let n = r.varint()?;
        // Two passes: validate and find the range, then add (no allocation per blob).
        let body = r.bytes;
        let (mut lo, mut hi, mut sum) = (usize::MAX, 0usize, 0u64);
        let mut index = 0u64;
        for _ in 0..n {
            index = index
                .checked_add(r.varint()?)
                .ok_or(HistogramError::Overflow)?;
            if index >= BUCKETS as u64 {
                return Err(HistogramError::Bucket(index));
            }
            let c = r.varint()?;
            sum = sum.checked_add(c).ok_or(HistogramError::Overflow)?;
            if c > 0 {
                lo = lo.min(index as usize);
                hi = hi.max(index as usize);
            }
        }
        if !r.bytes.is_empty() {
            return Err(HistogramError::Trailing(r.bytes.len()));
        }
        if sum == 0 {
            return Ok(());
        }
        self.total = self
            .total
            .checked_add(sum)
            .ok_or(HistogramError::Overflow)?;
        self.cover(lo, hi);
        let mut r = Reader { bytes: body };
        let mut index = 0usize;
        for _ in 0..n {
            index += r.varint()? as usize;
            let c = r.varint()?;
            self.counts[index - self.offset] += c;
        }
        self.min_ms = self.min_ms.min(min);
        self.max_ms = self.max_ms.max(max);
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn array(&mut self) -> Result<[u8; 8], HistogramError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<8>()
            .ok_or(HistogramError::Truncated)?;
        self.bytes = rest;
        Ok(*head)
    }

    fn varint(&mut self) -> Result<u64, HistogramError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.bytes.split_first().ok_or(HistogramError::Truncated)?;
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(HistogramError::Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_stay_small() {
        let mut h = Histogram::new();
        assert_eq!(Histogram::from_bytes(&h.to_bytes()).unwrap(), h);
        for v in [0.2, 0.25, 3.0, 3.0, 250.0, 90_000.0] {
            h.record(v);
        }
        let bytes = h.to_bytes();
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        assert_eq!(Histogram::from_bytes(&bytes).unwrap(), h);
    }

    #[test]
    fn corrupt_blobs_are_errors() {
        let mut h = Histogram::new();
        h.record(1.0);
        let bytes = h.to_bytes();
        assert_eq!(
            Histogram::from_bytes(&bytes[..bytes.len() - 1]),
            Err(HistogramError::Truncated)
        );
        assert_eq!(Histogram::from_bytes(&[9]), Err(HistogramError::Version(9)));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Histogram::from_bytes(&long),
            Err(HistogramError::Trailing(1))
        );
        let mut far = bytes[..17].to_vec();
        far.extend_from_slice(&[1, 0xff, 0x7f, 1]);
        assert_eq!(
            Histogram::from_bytes(&far),
            Err(HistogramError::Bucket(16383))
        );
    }
}
