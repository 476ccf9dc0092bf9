//! egress: a media egress service. A node admits start requests by CPU cost, runs each in its own `egress
//! handler` child process with a GStreamer pipeline, and counts exactly one outcome per child.
//!
//! # Layout
//!
//! - [`server`]: `egress serve` — wires the actors, the gRPC API and the HTTP server.
//! - [`actors`]: the supervision tree (NodeSupervisor, Monitor, Intake, Reporter, Queue, EgressSupervisor,
//!   ProcessActor); see its module doc for the tree.
//! - [`api`]: the `egress.v1.Egress` gRPC service; [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`handler`]: `egress handler`, the child process; [`pipeline`]: its GStreamer pipelines; [`ipc`]: the unix
//!   socket between the two.
//! - [`request`]: requests and their validation; [`outcome`]: kill reasons, results, statuses;
//!   [`config`]: the configuration tree; [`metrics`]: every metric name; [`cli`]: the client commands.

pub mod actors;
pub mod api;
pub mod cli;
pub mod config;
pub mod handler;
pub mod http;
pub mod ipc;
pub mod metrics;
pub mod outcome;
pub mod pipeline;
pub mod proto;
pub mod request;
pub mod server;
