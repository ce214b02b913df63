//! Side-by-side benchmarks of clawgate and the real OpenClaw gateway: one load client, written
//! once, run against both; a markdown table with ratios, raw JSON, and an SVG chart.
//! `bench/run` builds everything and runs [`suite`] inside a loopback-only network namespace.

#![forbid(unsafe_code)]

pub mod gateway;
pub mod proc;
pub mod report;
pub mod stats;
pub mod suite;
pub mod svg;
pub mod sys;
pub mod ws;
