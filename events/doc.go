// Package events is Herald's ingest contract written as Go types.
//
// A service publishes a domain event by appending one entry to the ingest
// stream (herald:events by default). The entry's fields are described in
// docs/contracts.md section 1; [Envelope] is that entry, [Parse] reads one
// strictly (every violation is a [*ValidationError] naming the field), and
// [Envelope.Values] writes one back in a stable field order for XADD.
//
// [Audience] is the parsed "to" field: one user, a list of users, the whole
// tenant or the subscribers of a topic.
//
// Typed domain events ([OrderPlacedEvent], [OrderShippedEvent],
// [PaymentFailedEvent], [PromotionEvent]) implement [Event] and are
// registered by type name, so a dispatcher can decode an envelope's data and
// find an event's default audience when the entry has no "to".
//
// The package imports only the standard library; every Herald package may
// import it. Parsing functions and the registry are safe for concurrent use.
package events
