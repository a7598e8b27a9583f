package config

import (
	"encoding/json"
	"fmt"
)

// Sample is a valid document with n routes and jobs export jobs, for
// benchmarks, tests and trying the tool.
func Sample(n, jobs int) []byte {
	type route struct {
		Route      string `json:"route"`
		ActivityID string `json:"activityId"`
		Entity     string `json:"entity"`
		Company    string `json:"company"`
	}
	type job struct {
		Job        string `json:"job"`
		Schedule   string `json:"schedule"`
		Timezone   string `json:"timezone"`
		ActivityID string `json:"activityId"`
		Prefix     string `json:"prefix"`
	}
	var doc struct {
		Routes []route `json:"routes"`
		Jobs   []job   `json:"jobs"`
	}
	doc.Routes, doc.Jobs = []route{}, []job{}
	for i := range n {
		doc.Routes = append(doc.Routes, route{fmt.Sprintf("route-%04d", i), guid(i), fmt.Sprintf("Entity %d", i), "USMF"})
	}
	for i := range jobs {
		name := fmt.Sprintf("job-%03d", i)
		doc.Jobs = append(doc.Jobs, job{name, fmt.Sprintf("cron(%d * * * ? *)", i%60), "Europe/Amsterdam", guid(100000 + i), "outbound/" + name + "/"})
	}
	b, _ := json.Marshal(doc)
	return b
}

func guid(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }
