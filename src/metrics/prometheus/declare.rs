//! `metric_table!`: turns the metric table (`table.rs`) into everything a metric needs,
//! so that a metric is declared once, by one row.
//!
//! A row is one Prometheus family, in exposition order:
//!
//! ```text
//! /// HELP text (doc lines joined with spaces).
//! family_name: kind {
//!     /// Optional doc of the snapshot field.
//!     field [label = "value", …],   // static labels, optional
//!     …
//! }
//! ```
//!
//! Kinds (the storage types are in `kinds.rs` and `hist.rs`):
//!
//! | kind | per shard | sample(s) | snapshot field |
//! | --- | --- | --- | --- |
//! | `counter` | `Counter` | the sum | `u64` |
//! | `counter_by(Label)` | `CounterBy`: a cell per label value | one per value | `u64`, all values |
//! | `counter_by_status` | `CounterByStatus`: a cell per HTTP status | one per status seen | `u64`, all statuses |
//! | `gauge` | `Gauge`: ups and downs | ups − downs | `u64` |
//! | `histogram(BOUNDS, Unit)` | `Histogram`: a cell per bucket, the sum | `_bucket`, `_sum`, `_count` | `HistogramSnapshot` |
//! | `per_shard(fn)` | nothing; `fn(&ShardBlock) -> u64` | one per shard, `shard="i"` | `Vec<u64>` |
//! | `info` | nothing | 1 with `version` and `backend` | `String` (the backend) |
//!
//! Generated: `ShardBlock` (one field per row field, cache-padded), `Totals` (the sum
//! over shards, every label kept; `collect`, `expose` and `snapshot`), the public
//! `Snapshot`, and for each histogram a marker type in `mod buckets` carrying its bounds
//! and unit. The hooks stay hand-written (in `mod.rs`) and reach a metric through its
//! `ShardBlock` field.

/// See the module doc.
macro_rules! metric_table {
    // The table as written: pack each row's kind and HELP lines into one token tree
    // each, so that the generation below can repeat them once per field.
    (
        $(
            $(#[doc = $help:literal])+
            $name:ident : $kind:ident $(( $($arg:tt)* ))? {
                $(
                    $(#[doc = $doc:literal])*
                    $field:ident $([ $($lk:ident = $lv:literal),+ $(,)? ])?
                ),+ $(,)?
            }
        )*
    ) => {
        $crate::metrics::prometheus::declare::metric_table! { @generate $(
            $name [$kind $($($arg)*)?] ($($help),+) {
                $( $(#[doc = $doc])* $field [$($($lk = $lv),+)?] )+
            }
        )* }
    };

    (@generate $(
        $name:ident $kind:tt $help:tt {
            $( $(#[doc = $doc:literal])* $field:ident [$($lk:ident = $lv:literal),*] )+
        }
    )*) => {
        /// Everything one shard counts, one field per field of the table. Cache-padded
        /// (128 bytes, covering adjacent-line prefetch) so two shards never write the
        /// same line. A derived kind's field is a zero-sized placeholder nobody reads
        /// (hence the `allow`); every stored field is read by `Totals::collect`.
        #[derive(Default)]
        #[repr(align(128))]
        #[allow(dead_code)]
        pub(super) struct ShardBlock {
            $($(
                pub(super) $field: $crate::metrics::prometheus::declare::metric_table!(@storage $kind $field),
            )+)*
        }

        /// Bucket bounds and unit of each histogram, as types (so `observe` sees
        /// constant bounds).
        mod buckets {
            $($(
                $crate::metrics::prometheus::declare::metric_table!(@buckets $kind $field);
            )+)*
        }

        /// Every metric summed over shards, every label kept.
        pub(super) struct Totals {
            $($(
                $field: $crate::metrics::prometheus::declare::metric_table!(@total_type $kind $field),
            )+)*
        }

        impl Totals {
            /// Sum `shards`; `backend` is the `build_info` label.
            pub(super) fn collect(shards: &[ShardBlock], backend: String) -> Self {
                Self {
                    $($(
                        $field: $crate::metrics::prometheus::declare::metric_table!(
                            @total $kind $field, shards, backend
                        ),
                    )+)*
                }
            }

            /// Write every family, in table order.
            pub(super) fn expose(&self, e: &mut $crate::metrics::prometheus::exposition::Exposition<'_>) {
                $(
                    e.family(
                        stringify!($name),
                        $crate::metrics::prometheus::declare::metric_table!(@type $kind),
                        concat! $help .trim(),
                    );
                    $(
                        $crate::metrics::prometheus::declare::metric_table!(
                            @expose $kind $field, &self.$field, e, stringify!($name),
                            &[$((stringify!($lk), $lv)),*]
                        );
                    )+
                )*
            }

            /// The public view.
            pub(super) fn snapshot(self) -> Snapshot {
                Snapshot {
                    $($(
                        $field: $crate::metrics::prometheus::declare::metric_table!(
                            @summary $kind $field, self.$field
                        ),
                    )+)*
                }
            }
        }

        /// Totals summed over shards at one moment, one field per field of the metric
        /// table (each read with `Relaxed`, so fields may be a few events apart from each
        /// other under load). A labelled counter is summed over its labels; durations
        /// are in nanoseconds.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Snapshot {
            $($(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!(
                    "`", stringify!($name), "`",
                    $(" {", stringify!($lk = $lv), "}",)*
                    ":"
                )]
                #[doc = concat! $help]
                pub $field: $crate::metrics::prometheus::declare::metric_table!(@summary_type $kind),
            )+)*
        }
    };

    // The per-shard storage of a field.
    (@storage [counter] $f:ident) => { $crate::metrics::prometheus::kinds::Counter };
    (@storage [counter_by $l:ty] $f:ident) => {
        $crate::metrics::prometheus::kinds::CounterBy<
            $l,
            { <$l as $crate::metrics::prometheus::labels::Label>::ALL.len() },
        >
    };
    (@storage [counter_by_status] $f:ident) => {
        $crate::metrics::prometheus::kinds::CounterByStatus
    };
    (@storage [gauge] $f:ident) => { $crate::metrics::prometheus::kinds::Gauge };
    (@storage [histogram $bounds:ident, $unit:ident] $f:ident) => {
        $crate::metrics::prometheus::hist::Histogram<buckets::$f, { $bounds.len() + 1 }>
    };
    (@storage [per_shard $g:path] $f:ident) => { $crate::metrics::prometheus::kinds::Derived };
    (@storage [info] $f:ident) => { $crate::metrics::prometheus::kinds::Derived };

    // The bucket marker of a histogram field (nothing for other kinds).
    (@buckets [histogram $bounds:ident, $unit:ident] $f:ident) => {
        #[allow(non_camel_case_types)]
        pub(crate) struct $f;
        impl $crate::metrics::prometheus::hist::Buckets for $f {
            const BOUNDS: &'static [u64] = &super::$bounds;
            const UNIT: $crate::metrics::prometheus::exposition::Unit =
                $crate::metrics::prometheus::exposition::Unit::$unit;
        }
    };
    (@buckets $kind:tt $f:ident) => {};

    // The Prometheus type word of a family.
    (@type [counter]) => { "counter" };
    (@type [counter_by $($x:tt)*]) => { "counter" };
    (@type [counter_by_status]) => { "counter" };
    (@type [gauge]) => { "gauge" };
    (@type [histogram $($x:tt)*]) => { "histogram" };
    (@type [per_shard $($x:tt)*]) => { "gauge" };
    (@type [info]) => { "gauge" };

    // The snapshot type of a field (spelled out, for the docs).
    (@summary_type [histogram $($x:tt)*]) => {
        $crate::metrics::prometheus::hist::HistogramSnapshot
    };
    (@summary_type [per_shard $($x:tt)*]) => { Vec<u64> };
    (@summary_type [info]) => { String };
    (@summary_type $kind:tt) => { u64 };

    // Derived kinds: computed from the shards or the collector, nothing stored.
    (@total_type [per_shard $g:path] $f:ident) => { Vec<u64> };
    (@total_type [info] $f:ident) => { String };
    (@total [per_shard $g:path] $f:ident, $shards:ident, $backend:ident) => {
        $shards.iter().map($g).collect()
    };
    (@total [info] $f:ident, $shards:ident, $backend:ident) => { $backend };
    (@expose [per_shard $g:path] $f:ident, $total:expr, $e:ident, $name:expr, $labels:expr) => {
        $crate::metrics::prometheus::kinds::expose_per_shard($total, $e, $name, $labels)
    };
    (@expose [info] $f:ident, $total:expr, $e:ident, $name:expr, $labels:expr) => {
        $crate::metrics::prometheus::kinds::expose_info($total, $e, $name, $labels)
    };
    (@summary [per_shard $g:path] $f:ident, $total:expr) => { $total };
    (@summary [info] $f:ident, $total:expr) => { $total };

    // Stored kinds: through their `Metric` impl.
    (@total_type $kind:tt $f:ident) => {
        <$crate::metrics::prometheus::declare::metric_table!(@storage $kind $f)
            as $crate::metrics::prometheus::kinds::Metric>::Total
    };
    (@total $kind:tt $f:ident, $shards:ident, $backend:ident) => {
        <$crate::metrics::prometheus::declare::metric_table!(@storage $kind $f)
            as $crate::metrics::prometheus::kinds::Metric>::total($shards.iter().map(|s| &s.$f))
    };
    (@expose $kind:tt $f:ident, $total:expr, $e:ident, $name:expr, $labels:expr) => {
        <$crate::metrics::prometheus::declare::metric_table!(@storage $kind $f)
            as $crate::metrics::prometheus::kinds::Metric>::expose($total, $e, $name, $labels)
    };
    (@summary $kind:tt $f:ident, $total:expr) => {
        <$crate::metrics::prometheus::declare::metric_table!(@storage $kind $f)
            as $crate::metrics::prometheus::kinds::Metric>::summary($total)
    };
}

pub(super) use metric_table;
