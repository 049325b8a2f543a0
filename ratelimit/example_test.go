package ratelimit_test

import (
	"fmt"

	"github.com/heraldrt/herald/ratelimit"
)

func ExampleParseRules() {
	_, err := ratelimit.ParseRules([]byte(`version: 1
rules:
  - name: marketing-per-user
    match: {type: "marketing.*"}
    per: user
    limit: 3
    interval: 0s
    action: queue
    max_wait: 30s
`))
	for _, p := range ratelimit.Problems(err) {
		fmt.Println(p)
	}
	// Output: line 7: rule "marketing-per-user": field interval: "0s" must be positive
}

func ExampleLimiter() {
	l, err := ratelimit.New(ratelimit.Config{}) // one per process
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	doc, err := ratelimit.ParseRules([]byte(`version: 1
rules:
  - name: marketing-per-user
    match: {type: "marketing.*"}
    per: user
    limit: 2
    interval: 1m
    action: queue
    max_wait: 30s
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := l.Apply(doc); err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		fmt.Printf("%+v\n", l.Push("acme", "42", "marketing.promo"))
	}
	fmt.Println(l.Push("acme", "42", "order.placed").Allow)
	// Output:
	// {Allow:true Drop:false Retry:0s MaxWait:0s Rule:}
	// {Allow:true Drop:false Retry:0s MaxWait:0s Rule:}
	// {Allow:false Drop:false Retry:30s MaxWait:30s Rule:marketing-per-user}
	// true
}
