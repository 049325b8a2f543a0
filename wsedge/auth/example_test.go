package auth_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/heraldrt/herald/wsedge/auth"
)

func Example() {
	secret := []byte("dev-secret-at-least-32-bytes-long!!")
	v, err := auth.New(auth.Config{HS256Secret: secret}) // or KeyFiles: PEM / JWKS
	if err != nil {
		panic(err)
	}
	token, err := auth.Mint(secret, auth.Claims{Subject: "42", Tenant: "acme", Topics: []string{"news", "deals.*"}}, time.Hour)
	if err != nil {
		panic(err)
	}

	c, err := v.Verify(token)
	switch {
	case errors.Is(err, auth.ErrExpired):
		fmt.Println("close 4004:", err)
	case errors.Is(err, auth.ErrInvalid):
		fmt.Println("close 4001:", err)
	default:
		fmt.Println(c.Subject, c.Tenant, c.MayTopic("deals.fr"), c.MayTopic("sports"))
	}

	forged, _ := auth.Mint([]byte("someone-else's-secret-of-32-bytes!"), auth.Claims{Subject: "42", Tenant: "acme"}, time.Hour)
	_, err = v.Verify(forged)
	fmt.Println(errors.Is(err, auth.ErrInvalid), err)
	// Output:
	// 42 acme true false
	// true token invalid: signature is invalid
}
