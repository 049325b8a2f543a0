package redistest_test

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/internal/redistest"
)

// Launch serves code that has no testing.TB, such as a TestMain or a demo.
func ExampleLaunch() {
	ctx := context.Background()
	srv, err := redistest.Launch(ctx, redistest.Config{AOF: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	rdb.Set(ctx, "greeting", "hello", 0)
	_ = srv.Kill() // crash it...
	_ = srv.Restart(ctx)
	fmt.Println(rdb.Get(ctx, "greeting").Val()) // ...and the AOF kept the key
	// Output: hello
}
