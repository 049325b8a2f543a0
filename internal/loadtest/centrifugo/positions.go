package centrifugo

// Positions is where one client stands in each recoverable channel it is
// subscribed to, kept from the frames it reads, to resume from after a
// reconnect: ConnectCommand(id, token, positions). Only channels with
// history appear. It is not safe for concurrent use: one per client, updated
// by its reader.
type Positions map[string]Position

// Update records what f tells: the stream position of each recoverable
// subscription in the connect reply, then the offset of each publication.
//
// After a recovery the reply's offset is not the stream's top (Centrifugo
// answers with the position the client asked from), so a position only
// moves forward within an epoch, and the recovered publications carry it to
// the top.
func (p Positions) Update(f *Frame) {
	if f.Connect != nil {
		for ch, s := range f.Connect.Subs {
			if !s.Recoverable {
				continue
			}
			if old, ok := p[ch]; ok && old.Epoch == s.Epoch && old.Offset > s.Offset {
				continue
			}
			p[ch] = s.Position
		}
	}
	for _, pub := range f.Publications {
		if pos, ok := p[pub.Channel]; ok && pub.Offset > pos.Offset {
			pos.Offset = pub.Offset
			p[pub.Channel] = pos
		}
	}
}
