package config_test

import (
	"fmt"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/shared/config"
)

// BenchmarkParse is what a cold start pays to load the document, by size
// (with -benchmem, its memory): a thousand routes and two hundred jobs is
// the scale to hold.
func BenchmarkParse(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		doc := config.Sample(n, n/5)
		b.Run(fmt.Sprintf("routes=%d/jobs=%d", n, n/5), func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := config.Parse(doc, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookup is a route's lookup by folder, which every notification
// and release pass makes: it must not grow with the number of routes.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		d, err := config.Parse(config.Sample(n, 0), nil)
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("route-%04d", n-1)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, ok := d.Routes.Lookup(name); !ok {
					b.Fatal("not found")
				}
			}
		})
	}
}
