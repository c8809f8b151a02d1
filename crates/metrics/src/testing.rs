//! Test helpers shared by the metrics unit tests: a deterministic, dependency-free random
//! source with normal and latency-shaped draws. Compiled for tests only; must not grow into
//! a second implementation of anything it tests.

/// splitmix64 with Box-Muller normals.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Lognormal-ish latency around 4 ms with a 2 % slow tail up to 30 s.
    pub fn latency(&mut self) -> f64 {
        if self.unit() < 0.02 {
            200.0 + self.unit() * 30_000.0
        } else {
            (4f64.ln() + 0.9 * self.normal()).exp()
        }
    }
}
