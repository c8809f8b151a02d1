//! Query execution with metrics recording, and the traffic sources built on it. (Being built.)
