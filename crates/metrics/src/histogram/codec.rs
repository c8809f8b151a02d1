//! The stored form of a [`Histogram`] (SQLite BLOBs): a form byte, exact min and max, then the
//! buckets in whichever of two forms is smaller. *Sparse* (form 1): the non-empty buckets as
//! (index delta, count) LEB128 varints — a minute rollup with a handful of latencies is ~25
//! bytes. *Dense* (form 2): first bucket, bucket count, a width (1, 2, 4 or 8 bytes) and
//! every count in that width, little-endian — wide hour/day/environment histograms are both
//! smaller and ~10× faster to merge this way, which is what keeps 30-day reads fast. Reading
//! validates everything and never panics; it must not trust a blob's counts to fit or its
//! indexes to be in range.
use super::{BUCKETS, Histogram, HistogramError};

const SPARSE: u8 = 1;
const DENSE: u8 = 2;

impl Histogram {
    /// Serialises in the smaller of the sparse and dense forms.
    pub fn to_bytes(&self) -> Vec<u8> {
        let max_count = self.counts.iter().copied().max().unwrap_or(0);
        let width: usize = match max_count {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xffff_ffff => 4,
            _ => 8,
        };
        let dense_size = self.counts.len() * width + 4;
        let mut sparse_size = 2;
        let mut prev = 0usize;
        for (k, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                sparse_size += varint_len((self.offset + k - prev) as u64) + varint_len(c);
                prev = self.offset + k;
            }
        }
        let dense = dense_size < sparse_size;
        let mut out = Vec::with_capacity(17 + dense_size.min(sparse_size));
        out.push(if dense { DENSE } else { SPARSE });
        let (min, max) = if self.total == 0 {
            (0.0, 0.0)
        } else {
            (self.min_ms, self.max_ms)
        };
        out.extend_from_slice(&min.to_le_bytes());
        out.extend_from_slice(&max.to_le_bytes());
        if dense {
            put_varint(&mut out, self.offset as u64);
            put_varint(&mut out, self.counts.len() as u64);
            out.push(width as u8);
            for &c in &self.counts {
                out.extend_from_slice(&c.to_le_bytes()[..width]);
            }
        } else {
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
        }
        out
    }

    /// Reads the form written by [`Histogram::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Histogram, HistogramError> {
        let mut h = Histogram::new();
        h.merge_bytes(bytes)?;
        Ok(h)
    }

    /// Adds a serialised histogram to this one without building it first. On error nothing
    /// is added.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<(), HistogramError> {
        let (&form, _) = bytes.split_first().ok_or(HistogramError::Truncated)?;
        if form != SPARSE && form != DENSE {
            return Err(HistogramError::Version(form));
        }
        let head = bytes.get(1..17).ok_or(HistogramError::Truncated)?;
        let (min, max) = head.split_at(8);
        let min = f64::from_le_bytes(min.try_into().map_err(|_| HistogramError::Truncated)?);
        let max = f64::from_le_bytes(max.try_into().map_err(|_| HistogramError::Truncated)?);
        let mut pos = 17;
        let added = if form == DENSE {
            self.merge_dense(bytes, &mut pos)?
        } else {
            self.merge_sparse(bytes, &mut pos)?
        };
        if added {
            self.min_ms = self.min_ms.min(min);
            self.max_ms = self.max_ms.max(max);
        }
        Ok(())
    }

    fn merge_sparse(&mut self, bytes: &[u8], pos: &mut usize) -> Result<bool, HistogramError> {
        let n = varint(bytes, pos)?;
        if n > BUCKETS as u64 {
            return Err(HistogramError::Overflow);
        }
        // Counts go straight into place; a blob found corrupt halfway is taken back out.
        let start = *pos;
        let mut added = 0u64;
        let result = self.add_sparse(bytes, pos, n, &mut added);
        if let Err(e) = result {
            let mut undo = start;
            let _ = self.add_sparse_undo(bytes, &mut undo, added);
            return Err(e);
        }
        let sum = result?;
        if *pos != bytes.len() {
            let mut undo = start;
            let _ = self.add_sparse_undo(bytes, &mut undo, n);
            return Err(HistogramError::Trailing(bytes.len() - *pos));
        }
        if sum == 0 {
            return Ok(false);
        }
        match self.total.checked_add(sum) {
            Some(total) => self.total = total,
            None => {
                let mut undo = start;
                let _ = self.add_sparse_undo(bytes, &mut undo, n);
                return Err(HistogramError::Overflow);
            }
        }
        Ok(true)
    }

    /// Adds `n` (delta, count) pairs; counts pairs fully added in `added`; returns their sum.
    fn add_sparse(
        &mut self,
        bytes: &[u8],
        pos: &mut usize,
        n: u64,
        added: &mut u64,
    ) -> Result<u64, HistogramError> {
        let (mut index, mut sum) = (0u64, 0u64);
        for _ in 0..n {
            index = index
                .checked_add(varint(bytes, pos)?)
                .ok_or(HistogramError::Overflow)?;
            if index >= BUCKETS as u64 {
                return Err(HistogramError::Bucket(index));
            }
            let c = varint(bytes, pos)?;
            let next = sum.checked_add(c).ok_or(HistogramError::Overflow)?;
            if c > 0 {
                // Indexes ascend: only the first can fall below the range, later ones past it.
                let i = index as usize;
                if *added == 0 || self.counts.is_empty() || i < self.offset {
                    self.cover(i, i);
                } else if i >= self.offset + self.counts.len() {
                    self.counts.resize(i + 1 - self.offset, 0);
                }
                self.counts[i - self.offset] += c;
            }
            sum = next;
            *added += 1;
        }
        Ok(sum)
    }

    /// Takes back the first `n` pairs that [`Self::add_sparse`] added, and re-trims the ends.
    fn add_sparse_undo(
        &mut self,
        bytes: &[u8],
        pos: &mut usize,
        n: u64,
    ) -> Result<(), HistogramError> {
        let mut index = 0u64;
        for _ in 0..n {
            index += varint(bytes, pos)?;
            let c = varint(bytes, pos)?;
            if c > 0 {
                self.counts[index as usize - self.offset] -= c;
            }
        }
        let first = self.counts.iter().position(|c| *c > 0);
        let last = self.counts.iter().rposition(|c| *c > 0);
        match (first, last) {
            (Some(f), Some(l)) => {
                self.counts.truncate(l + 1);
                self.counts.drain(..f);
                self.offset += f;
            }
            _ => {
                self.counts.clear();
                self.offset = 0;
            }
        }
        Ok(())
    }

    fn merge_dense(&mut self, bytes: &[u8], pos: &mut usize) -> Result<bool, HistogramError> {
        let lo = varint(bytes, pos)?;
        let len = varint(bytes, pos)?;
        let end = lo.checked_add(len).ok_or(HistogramError::Overflow)?;
        if end > BUCKETS as u64 {
            return Err(HistogramError::Bucket(end.saturating_sub(1)));
        }
        let width = usize::from(*bytes.get(*pos).ok_or(HistogramError::Truncated)?);
        *pos += 1;
        if ![1, 2, 4, 8].contains(&width) {
            return Err(HistogramError::Version(DENSE));
        }
        let body = &bytes[*pos..];
        let want = len as usize * width;
        if body.len() < want {
            return Err(HistogramError::Truncated);
        }
        if body.len() > want {
            return Err(HistogramError::Trailing(body.len() - want));
        }
        let lo = lo as usize;
        match width {
            1 => self.add_dense::<1>(lo, body),
            2 => self.add_dense::<2>(lo, body),
            4 => self.add_dense::<4>(lo, body),
            _ => self.add_dense::<8>(lo, body),
        }
    }

    /// Adds dense counts of `W` bytes starting at bucket `lo` (the width is a constant, so
    /// the loops vectorise). Zero ends are trimmed so the histogram stays canonical; the sum
    /// is checked before anything is added.
    fn add_dense<const W: usize>(
        &mut self,
        lo: usize,
        body: &[u8],
    ) -> Result<bool, HistogramError> {
        let Some(first) = body.chunks_exact(W).position(|c| read::<W>(c) > 0) else {
            return Ok(false);
        };
        let n = body.len() / W;
        let last = n
            - 1
            - body
                .chunks_exact(W)
                .rev()
                .position(|c| read::<W>(c) > 0)
                .unwrap_or(0);
        let src = &body[first * W..(last + 1) * W];
        // Below 8 bytes a blob's sum has a small bound; only check it when the bound is near
        // overflowing (or the width is 8), so the common case is one pass.
        let bound = ((last - first + 1) as u64).checked_mul(u64::MAX >> (64 - 8 * W as u32));
        if W == 8 || bound.and_then(|b| self.total.checked_add(b)).is_none() {
            let sum = src
                .chunks_exact(W)
                .try_fold(0u64, |acc, c| acc.checked_add(read::<W>(c)))
                .ok_or(HistogramError::Overflow)?;
            self.total
                .checked_add(sum)
                .ok_or(HistogramError::Overflow)?;
        }
        self.cover(lo + first, lo + last);
        let dst = &mut self.counts[lo + first - self.offset..=lo + last - self.offset];
        let mut sum = 0u64;
        for (d, c) in dst.iter_mut().zip(src.chunks_exact(W)) {
            let v = read::<W>(c);
            *d += v;
            sum += v;
        }
        self.total += sum;
        Ok(true)
    }
}

/// A little-endian count of `W` bytes.
#[inline(always)]
fn read<const W: usize>(c: &[u8]) -> u64 {
    match W {
        1 => u64::from(c[0]),
        2 => u64::from(u16::from_le_bytes([c[0], c[1]])),
        4 => u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        _ => {
            let mut b = [0u8; 8];
            b[..W].copy_from_slice(&c[..W]);
            u64::from_le_bytes(b)
        }
    }
}

fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A LEB128 varint at `pos` (advanced past it).
#[inline]
fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, HistogramError> {
    let first = *bytes.get(*pos).ok_or(HistogramError::Truncated)?;
    *pos += 1;
    if first < 0x80 {
        return Ok(u64::from(first));
    }
    let mut v = u64::from(first & 0x7f);
    let mut shift = 7u32;
    loop {
        let b = *bytes.get(*pos).ok_or(HistogramError::Truncated)?;
        *pos += 1;
        let bits = u64::from(b & 0x7f)
            .checked_shl(shift)
            .ok_or(HistogramError::Overflow)?;
        v |= bits;
        if b < 0x80 {
            return Ok(v);
        }
        shift += 7;
        if shift >= 64 {
            return Err(HistogramError::Overflow);
        }
    }
}

#[cfg(test)]
mod tests;
