//! The join examples through the TopologyTestDriver.
#![allow(clippy::unwrap_used)]

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_examples::clicks::{attribution_topology, Attribution, Click, Impression, WINDOW_MS};
use streams_examples::orders::{
    enrichment_topology, json, revenue_by_tier_topology, Customer, EnrichedOrder, Order,
};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn order(id: &str, customer: &str, item: &str, cents: i64) -> Order {
    Order {
        order_id: id.into(),
        customer_id: customer.into(),
        item: item.into(),
        amount_cents: cents,
    }
}

fn customer(name: &str, tier: &str) -> Customer {
    Customer {
        name: name.into(),
        tier: tier.into(),
    }
}

#[test]
fn orders_are_enriched_with_the_customer_known_at_order_time() {
    let t = enrichment_topology("orders", "customers", "enriched").unwrap();
    let d = TopologyTestDriver::new(t, StreamsConfig::new("enrich").unwrap()).unwrap();
    let customers = d.create_input_topic("customers", s(), json::<Customer>());
    let orders = d.create_input_topic("orders", s(), json::<Order>());
    let out = d.create_output_topic("enriched", s(), json::<EnrichedOrder>());
    customers
        .pipe_input_with_timestamp("c1".into(), customer("Ada", "gold"), 1)
        .unwrap();
    orders
        .pipe_input_with_timestamp("o1".into(), order("o1", "c1", "tea", 300), 2)
        .unwrap();
    orders
        .pipe_input_with_timestamp("o2".into(), order("o2", "c2", "jam", 450), 3)
        .unwrap();
    customers
        .pipe_input_with_timestamp("c2".into(), customer("Bob", "silver"), 4)
        .unwrap();
    customers
        .pipe_input_with_timestamp("c1".into(), customer("Ada L.", "platinum"), 5)
        .unwrap();
    orders
        .pipe_input_with_timestamp("o3".into(), order("o3", "c1", "cake", 900), 6)
        .unwrap();
    let got = out.read_records_to_list().unwrap();
    let summary: Vec<(String, String, Option<String>, i64)> = got
        .into_iter()
        .map(|r| {
            (
                r.key,
                r.value.order.order_id,
                r.value.customer_name,
                r.timestamp,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("c1".into(), "o1".into(), Some("Ada".into()), 2),
            // Customer c2 arrives after the order: a left join emits it without a name, and the
            // later table update does not re-emit it.
            ("c2".into(), "o2".into(), None, 3),
            ("c1".into(), "o3".into(), Some("Ada L.".into()), 6),
        ]
    );
}

#[test]
fn revenue_is_summed_per_tier_of_known_customers() {
    let t = revenue_by_tier_topology("orders", "customers", "revenue").unwrap();
    assert_eq!(t.subtopologies().len(), 3, "{}", t.describe());
    let d = TopologyTestDriver::new(t, StreamsConfig::new("revenue").unwrap()).unwrap();
    let customers = d.create_input_topic("customers", s(), json::<Customer>());
    let orders = d.create_input_topic("orders", s(), json::<Order>());
    customers
        .pipe_input_with_timestamp("c1".into(), customer("Ada", "gold"), 1)
        .unwrap();
    customers
        .pipe_input_with_timestamp("c2".into(), customer("Bob", "gold"), 1)
        .unwrap();
    for (i, (c, cents)) in [("c1", 100), ("c2", 250), ("c9", 999), ("c1", 50)]
        .into_iter()
        .enumerate()
    {
        let id = format!("o{i}");
        orders
            .pipe_input_with_timestamp(id.clone(), order(&id, c, "x", cents), 2 + i as i64)
            .unwrap();
    }
    let out = d.create_output_topic("revenue", s(), Serdes::nullable(Serdes::i64()));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("gold".to_string(), Some(100)),
            ("gold".into(), Some(350)),
            ("gold".into(), Some(400)),
        ]
    );
}

#[test]
fn clicks_within_five_minutes_are_attributed_and_the_rest_reported_after_the_window() {
    let t = attribution_topology("impressions", "clicks", "attributions").unwrap();
    let d = TopologyTestDriver::new(t, StreamsConfig::new("clicks").unwrap()).unwrap();
    let imp = d.create_input_topic("impressions", s(), json::<Impression>());
    let clk = d.create_input_topic("clicks", s(), json::<Click>());
    let out = d.create_output_topic("attributions", s(), json::<Attribution>());
    let shown = |ad: &str, user: &str| Impression {
        ad_id: ad.into(),
        user: user.into(),
    };
    let click = Click {
        position: "top".into(),
    };
    let min = 60_000;
    imp.pipe_input_with_timestamp("i1".into(), shown("ad1", "u1"), 0)
        .unwrap();
    imp.pipe_input_with_timestamp("i2".into(), shown("ad2", "u2"), min)
        .unwrap();
    clk.pipe_input_with_timestamp("i1".into(), click.clone(), 4 * min)
        .unwrap();
    // Too late for i2 (shown at 1 min): 6 min 1 s is more than 5 min after it.
    clk.pipe_input_with_timestamp("i2".into(), click.clone(), 6 * min + 1000)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(
            "i1".to_string(),
            Attribution {
                ad_id: "ad1".into(),
                user: "u1".into(),
                click: Some(click.clone()),
            }
        )]
    );
    // i2's window closes at 1 min + 5 min + 30 s grace; later records move stream time past it.
    imp.pipe_input_with_timestamp("i3".into(), shown("ad3", "u3"), WINDOW_MS + min + 20_000)
        .unwrap();
    assert!(
        out.is_empty(),
        "6 min 20 s: i2's window (until 6 min 30 s) is still in grace"
    );
    imp.pipe_input_with_timestamp("i4".into(), shown("ad4", "u4"), WINDOW_MS + 2 * min)
        .unwrap();
    assert_eq!(
        out.read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value.click, r.timestamp))
            .collect::<Vec<_>>(),
        vec![("i2".to_string(), None, min)]
    );
}
