//! Usage sampling, forecasts, the post-promotion watch window and the weekly report.
//! (Being built.)
