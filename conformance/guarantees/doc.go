// Package guarantees measures what each backend really guarantees, side by
// side. Where the conformance suite answers pass or fail in `go test`, this
// package runs scenarios — under faults where the target supports them —
// and records figures: events lost, duplicated, reordered and RESETs sent,
// time for a crashed owner's instance to disappear, notification latency,
// linearizability of concurrent histories (checked with porcupine), time to
// recover from a store outage. `junction conformance` runs it and renders
// the guarantee matrix as Markdown, JSON or HTML.
//
// Every scenario states, in one sentence, the contract line it measures.
package guarantees
