package auth_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
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

// A Verifier that takes its keys from the identity provider's JWKS URL and
// follows its rotations until Close.
func ExampleNew_jwksURL() {
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"2026-03","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)
	}))
	defer idp.Close()

	v, err := auth.New(auth.Config{JWKSURL: idp.URL + "/.well-known/jwks.json"})
	if err != nil {
		panic(err) // the first fetch failed: New says which URL and why
	}
	defer v.Close() // stops the refresher

	fmt.Println(v.Algorithms())
	// Output: [EdDSA]
}
