package events

// The shop's domain events: what an order service, a shipping service, a
// payment service and a marketing tool emit.

func init() {
	Register(func() Event { return new(OrderPlacedEvent) })
	Register(func() Event { return new(OrderShippedEvent) })
	Register(func() Event { return new(PaymentFailedEvent) })
	Register(func() Event { return new(PromotionEvent) })
}

// LineItem is one line of an order.
type LineItem struct {
	SKU      string `json:"sku"`
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
	Cents    int64  `json:"cents"` // unit price in minor units
}

// OrderPlacedEvent: a buyer placed an order. Addressed to the buyer.
type OrderPlacedEvent struct {
	OrderID    string     `json:"order_id"`
	BuyerID    string     `json:"buyer_id"`
	TotalCents int64      `json:"total_cents"`
	Currency   string     `json:"currency"`
	Items      []LineItem `json:"items,omitempty"`
}

func (*OrderPlacedEvent) EventType() string { return "order.placed" }

func (e *OrderPlacedEvent) DefaultAudience() (Audience, bool) { return buyer(e.BuyerID) }

// OrderShippedEvent: an order left the warehouse. Addressed to the buyer.
type OrderShippedEvent struct {
	OrderID  string `json:"order_id"`
	BuyerID  string `json:"buyer_id"`
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

func (*OrderShippedEvent) EventType() string { return "order.shipped" }

func (e *OrderShippedEvent) DefaultAudience() (Audience, bool) { return buyer(e.BuyerID) }

// PaymentFailedEvent: a charge was declined. Addressed to the buyer.
type PaymentFailedEvent struct {
	OrderID     string `json:"order_id"`
	BuyerID     string `json:"buyer_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Reason      string `json:"reason"`
}

func (*PaymentFailedEvent) EventType() string { return "payment.failed" }

func (e *PaymentFailedEvent) DefaultAudience() (Audience, bool) { return buyer(e.BuyerID) }

// PromotionEvent: a marketing message. It has no natural audience: the
// publisher says whom it is for (usually "tenant" or a topic).
type PromotionEvent struct {
	Campaign string `json:"campaign"`
	Title    string `json:"title"`
	Body     string `json:"body"`
}

func (*PromotionEvent) EventType() string { return "marketing.promotion" }

func buyer(id string) (Audience, bool) {
	if !ValidID(id) {
		return Audience{}, false
	}
	return ToUser(id), true
}
