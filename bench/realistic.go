package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// realisticEvents builds n varied Segment events as a browser or mobile library sends them: track
// (e-commerce and product events), identify (traits with a nested company and address) and page, each
// with a full context (library, page, userAgent, locale, timezone, campaign or device). IDs are random
// (UUIDs, hex order IDs), as they are in real traffic, so they compress as real events do, unlike a
// repeated pad. Each is a JSON object without messageId: the sender adds it first. Seeded: the same
// events every run.
func realisticEvents(n int) ([][]byte, error) {
	r := rand.New(rand.NewPCG(21, 2026))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	uuid := func() string {
		return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, 0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
	}
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	products := []string{"Monstera Deliciosa", "Fiddle Leaf Fig", "Ceramic Planter 12in", "Organic Potting Mix", "Watering Can Brass", "Grow Light LED 40W", "Snake Plant", "Pruning Shears"}
	categories := []string{"Plants", "Planters", "Soil & Care", "Tools", "Lighting"}
	paths := []string{"/", "/shop", "/shop/plants", "/shop/planters", "/product/monstera-deliciosa", "/cart", "/checkout", "/blog/repotting-guide", "/pricing", "/account"}
	agents := []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	}
	out := make([][]byte, 0, n)
	for range n {
		at = at.Add(time.Duration(r.IntN(4000)) * time.Millisecond)
		user := fmt.Sprintf("usr_%d", r.IntN(200_000))
		path := pick(paths...)
		page := map[string]any{"path": path, "referrer": pick("", "https://www.google.com/", "https://www.instagram.com/", "https://news.ycombinator.com/"),
			"search": pick("", "", "?utm_source=newsletter&utm_medium=email", "?q=monstera"), "title": "Leafy — " + pick("Shop", "Cart", "Plants", "Blog"),
			"url": "https://www.leafy.example" + path}
		ctx := map[string]any{
			"library":   map[string]any{"name": "analytics.js", "version": "npm:next-1." + fmt.Sprint(60+r.IntN(15)) + ".0"},
			"page":      page,
			"userAgent": pick(agents...),
			"locale":    pick("en-US", "en-GB", "de-DE", "fr-FR", "es-ES"),
			"timezone":  pick("America/New_York", "Europe/Berlin", "Europe/London", "Asia/Tokyo"),
			"ip":        fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254)),
		}
		if r.IntN(3) == 0 {
			ctx["campaign"] = map[string]any{"name": pick("black-friday", "winter-sale", "spring-refresh"), "source": pick("newsletter", "google", "instagram"), "medium": pick("email", "cpc", "social")}
		}
		if r.IntN(4) == 0 {
			ctx["device"] = map[string]any{"id": uuid(), "manufacturer": pick("Apple", "Samsung", "Google"), "model": pick("iPhone16,2", "SM-S918B", "Pixel 9"), "type": pick("ios", "android")}
			ctx["os"] = map[string]any{"name": pick("iOS", "Android"), "version": pick("18.1", "15", "14")}
			ctx["app"] = map[string]any{"name": "Leafy", "version": "4." + fmt.Sprint(r.IntN(20)) + ".1", "build": fmt.Sprint(3000 + r.IntN(900))}
		}
		ev := map[string]any{"anonymousId": uuid(), "timestamp": at.Format(time.RFC3339Nano), "context": ctx, "integrations": map[string]any{}}
		if r.IntN(5) > 0 {
			ev["userId"] = user
		}
		switch k := r.IntN(10); {
		case k < 6:
			ev["type"] = "track"
			item := func() map[string]any {
				name := pick(products...)
				return map[string]any{"product_id": fmt.Sprintf("%x", r.Uint64()&0xffffffffff), "sku": fmt.Sprintf("LF-%05d", r.IntN(99999)), "name": name,
					"category": pick(categories...), "brand": "Leafy", "price": float64(r.IntN(15000))/100 + 0.99, "quantity": 1 + r.IntN(3),
					"url": "https://www.leafy.example/product/" + fmt.Sprint(r.IntN(5000)), "image_url": fmt.Sprintf("https://cdn.leafy.example/img/%x.jpg", r.Uint64())}
			}
			switch ev["event"] = pick("Product Viewed", "Product Added", "Order Completed", "Checkout Started", "Products Searched"); ev["event"] {
			case "Order Completed", "Checkout Started":
				var items []map[string]any
				for range 1 + r.IntN(4) {
					items = append(items, item())
				}
				ev["properties"] = map[string]any{"order_id": fmt.Sprintf("%016x", r.Uint64()), "affiliation": "Leafy Web", "total": float64(r.IntN(40000)) / 100,
					"revenue": float64(r.IntN(35000)) / 100, "shipping": 5.99, "tax": float64(r.IntN(3000)) / 100, "discount": float64(r.IntN(1000)) / 100,
					"coupon": pick("", "WELCOME10", "BF2026"), "currency": pick("USD", "EUR", "GBP"), "products": items}
			case "Products Searched":
				ev["properties"] = map[string]any{"query": pick("monstera", "pet safe plants", "large planter", "grow light")}
			default:
				ev["properties"] = item()
			}
		case k < 8:
			ev["type"] = "page"
			ev["name"] = pick("Home", "Shop", "Product", "Cart", "Blog Post")
			ev["category"] = pick("", "Shop", "Content")
			ev["properties"] = page
		default:
			ev["type"] = "identify"
			ev["userId"] = user
			ev["traits"] = map[string]any{"email": fmt.Sprintf("%s.%d@%s", pick("alex", "sam", "kim", "jordan", "lee"), r.IntN(10000), pick("gmail.com", "outlook.com", "example.org")),
				"name": pick("Alex", "Sam", "Kim", "Jordan", "Lee") + " " + pick("Smith", "Müller", "García", "Nguyen", "Okafor"), "plan": pick("free", "plus", "pro"),
				"createdAt": at.Add(-time.Duration(r.IntN(900)) * 24 * time.Hour).Format(time.RFC3339), "logins": r.IntN(400),
				"company": map[string]any{"id": fmt.Sprint(r.IntN(90000)), "name": pick("Acme", "Globex", "Initech", "Umbrella") + " " + pick("Inc", "GmbH", "Ltd"), "industry": pick("Retail", "Software", "Hospitality"), "employee_count": r.IntN(5000)},
				"address": map[string]any{"city": pick("Austin", "Berlin", "Lyon", "Osaka"), "country": pick("US", "DE", "FR", "JP"), "postalCode": fmt.Sprint(10000 + r.IntN(89999))}}
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, bytes.TrimSuffix(bytes.TrimPrefix(b, []byte("{")), []byte("}")))
	}
	return out, nil
}
