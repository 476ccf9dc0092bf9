//! Generated protobuf and tonic code for the API and the handler IPC; converted to domain types at the edges.
#![allow(clippy::all, missing_docs, unreachable_pub)]

tonic::include_proto!("egress.v1");
