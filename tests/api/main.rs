//! Integration tests: each starts the real server on an ephemeral port
//! against a temporary GeoPackage.

mod cli;
mod consistency;
mod copy;
mod demo;
mod dispatch;
mod events;
mod features;
mod formats;
mod geopackage;
mod health;
mod helpers;
mod hostile_files;
mod hostile_filters;
mod hostile_http;
mod nodes;
mod planning;
mod postgis;
mod replay;
mod snapshot;
mod store_edit;
mod tiles;
mod transactions;
mod validation;
