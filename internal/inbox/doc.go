// Package inbox owns a user's inbox: the notifications of the user's own
// feed and of the tenant's feed that one device would be pushed, newest
// first, with the user's read state.
//
// Read state belongs to the user and is shared by all the user's devices.
// It is one hash per user (keys.Space.ReadState, tagged like the user's
// feed): per feed a watermark "<epoch>:<seq>" (everything at or below it is
// read) and the seqs read above it. Marking read adds seqs and moves the
// watermark up over every run of read seqs that follows it, in one script
// call per feed (mark.lua), so the hash stays small whatever the history.
// Seqs below a feed's oldest retained entry are folded into the watermark,
// so the set never outgrows the feed's retention.
//
// Read state is of one epoch per feed and counts for nothing in another.
// mark.lua adds to state of the epoch it is given and replaces state of
// another epoch only when the caller has seen, by reading the feed's head
// again, that the other is older: a mark made with an epoch that was lost
// meanwhile never erases the new epoch's state (MarkRead, apply).
//
// Unread counts are computed in Redis (unread.lua, one call per feed, one
// slot each): the entries above the watermark that are not read, not
// expired and meant for the device.
//
// The HTTP API (internal/httpapi) and the edge (wsedge, for the "unread"
// frame) import it. An Inbox is safe for concurrent use.
package inbox
