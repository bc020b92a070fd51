//! Stream-table enrichment: orders (keyed by order id) joined with the customers table.
//!
//! Orders name their customer in the value, so the stream is re-keyed by customer id, which
//! repartitions it to line up with the customers table, then left-joined: an order of an unknown
//! customer still comes out, with no customer name.

use serde::{Deserialize, Serialize};
use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{Result, Topology};
use streams_dsl::{Consumed, Grouped, Materialized, Produced, StreamsBuilder};

/// An order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order id (also the record key on the input topic).
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// What.
    pub item: String,
    /// Price in cents.
    pub amount_cents: i64,
}

/// A row of the customers table (keyed by customer id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Display name.
    pub name: String,
    /// Loyalty tier.
    pub tier: String,
}

/// An order with its customer's details (keyed by customer id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedOrder {
    /// The order.
    pub order: Order,
    /// The customer's name, if the customer was known when the order was processed.
    pub customer_name: Option<String>,
    /// The customer's tier, if known.
    pub tier: Option<String>,
}

/// The JSON serde of `T`.
pub fn json<T: Serialize + serde::de::DeserializeOwned + 'static>() -> SerdeRef<T> {
    Serdes::json::<T>()
}

/// `orders` (order id -> [`Order`]) and `customers` (customer id -> [`Customer`]) ->
/// `output` (customer id -> [`EnrichedOrder`]), all JSON values with string keys.
pub fn enrichment_topology(orders: &str, customers: &str, output: &str) -> Result<Topology> {
    let b = StreamsBuilder::new();
    let s: SerdeRef<String> = Serdes::string();
    let customers = b.table(
        customers,
        Consumed::with(s.clone(), json::<Customer>()),
        Materialized::as_("customers"),
    );
    b.stream_with(&[orders], Consumed::with(s.clone(), json::<Order>()))
        .select_key(|_, o: &Order| o.customer_id.clone())
        .left_join_table(&customers, |o: &Order, c: Option<&Customer>| {
            EnrichedOrder {
                order: o.clone(),
                customer_name: c.map(|c| c.name.clone()),
                tier: c.map(|c| c.tier.clone()),
            }
        })
        .to_with(output, Produced::with(s.clone(), json::<EnrichedOrder>()));
    b.build()
}

/// Revenue per customer tier, for the enriched orders of known customers: a second stage that
/// re-groups by tier (another repartition) and sums.
pub fn revenue_by_tier_topology(orders: &str, customers: &str, output: &str) -> Result<Topology> {
    let b = StreamsBuilder::new();
    let s: SerdeRef<String> = Serdes::string();
    let customers = b.table(
        customers,
        Consumed::with(s.clone(), json::<Customer>()),
        Materialized::as_("customers"),
    );
    b.stream_with(&[orders], Consumed::with(s.clone(), json::<Order>()))
        .select_key(|_, o: &Order| o.customer_id.clone())
        .join_table(&customers, |o: &Order, c: &Customer| {
            (c.tier.clone(), o.amount_cents)
        })
        .map(|_, (tier, cents): (String, i64)| (tier, cents))
        .group_by_key(Grouped::as_("by-tier"))
        .reduce(|a, b| a + b, Materialized::as_("revenue"))
        .to_stream()
        .to(output);
    b.build()
}
