package main

// The report's charts: SVG files beside RESULTS.md, drawn with
// gonum.org/v1/plot (a dependency of this tool only; no bootstrap imports
// it).

import (
	"bufio"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is one line of a chart.
type series struct {
	name   string
	xy     plotter.XYs
	dashed bool
	color  color.Color
	marks  bool
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // green
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // purple
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}, // brown
}

// chart is one plot to write.
type chart struct {
	file, title, xLabel, yLabel string
	logX                        bool
	xTicks                      []plot.Tick
	lines                       []series
	yMin                        float64 // the y axis starts here (and at 0 unless set lower)
	legendBottom                bool    // the legend at the bottom left, not the top left
	headroom                    float64 // the y axis goes this far past the highest value (room for a top legend; default 1.3)
}

// write draws c into dir/c.file.
func (c chart) write(dir string) error {
	p := plot.New()
	p.Title.Text = c.title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = c.xLabel
	p.Y.Label.Text = c.yLabel
	p.Legend.Top, p.Legend.Left = !c.legendBottom, true
	p.Legend.Padding = vg.Points(2)
	p.Add(plotter.NewGrid())
	if c.logX {
		p.X.Scale = plot.LogScale{}
	}
	if c.xTicks != nil {
		p.X.Tick.Marker = plot.ConstantTicks(c.xTicks)
	}
	for i, s := range c.lines {
		if len(s.xy) == 0 {
			continue
		}
		col := s.color
		if col == nil {
			col = palette[i%len(palette)]
		}
		l, err := plotter.NewLine(s.xy)
		if err != nil {
			return err
		}
		l.Color, l.Width = col, vg.Points(1.5)
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		p.Add(l)
		if s.marks {
			pts, err := plotter.NewScatter(s.xy)
			if err != nil {
				return err
			}
			pts.Color, pts.Shape, pts.Radius = col, draw.CircleGlyph{}, vg.Points(3)
			p.Add(pts)
			p.Legend.Add(s.name, l, pts)
		} else {
			p.Legend.Add(s.name, l)
		}
	}
	p.Y.Min = min(p.Y.Min, c.yMin)
	if c.headroom == 0 {
		c.headroom = 1.3
	}
	p.Y.Max *= c.headroom
	if c.logX { // room for the first and last tick labels
		p.X.Min, p.X.Max = p.X.Min/1.3, p.X.Max*1.3
	}
	return p.Save(7*vg.Inch, 4*vg.Inch, filepath.Join(dir, c.file))
}

// sizeTicks are ticks at the sizes run, labelled as the benchmarks name
// them.
func sizeTicks(sizes []string) []plot.Tick {
	var t []plot.Tick
	for _, s := range sizes {
		t = append(t, plot.Tick{Value: sizeBytes(s) / (1 << 20), Label: s})
	}
	return t
}

// bySize is a metric of pre+size over the sizes, x in MiB.
func (r *report) bySize(pre, unit string, sizes []string) plotter.XYs {
	var xy plotter.XYs
	for _, s := range sizes {
		if r.res.has(pre + s) {
			xy = append(xy, plotter.XY{X: sizeBytes(s) / (1 << 20), Y: r.res.v(pre+s, unit)})
		}
	}
	return xy
}

// constant is a horizontal line from x0 to x1.
func constant(x0, x1, y float64) plotter.XYs {
	return plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}}
}

// figure writes c and embeds it in the report; a chart that cannot be
// written is said so in its place.
func (r *report) figure(c chart, alt string) {
	if r.charts == "" {
		return
	}
	if err := c.write(r.charts); err != nil {
		r.p("*(chart %s not drawn: %v)*\n\n", c.file, err)
		return
	}
	r.p("![%s](%s)\n\n", alt, c.file)
}

// readSeries reads a schedule series written by BenchmarkPollSchedule:
// seconds, requests in the last 60 s, requests in the last 5 minutes.
func readSeries(path string) (t, last60, last5 []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ",")
		if len(fs) != 3 {
			continue
		}
		var v [3]float64
		ok := true
		for i, s := range fs {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				ok = false
				break
			}
			v[i] = x
		}
		if ok {
			t, last60, last5 = append(t, v[0]), append(last60, v[1]), append(last5, v[2])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, nil, err
	}
	if len(t) == 0 {
		return nil, nil, nil, fmt.Errorf("%s holds no samples", path)
	}
	return t, last60, last5, nil
}
