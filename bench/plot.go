package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// A line chart in SVG, drawn from a run's figures: the scale run's curves
// in docs/benchmarks.md are generated, never drawn by hand.

// Series is one line of a chart.
type Series struct {
	Name   string
	Points [][2]float64 // x, y
	// Level draws a horizontal reference line at this y instead (a
	// baseline or a goal), when Points is empty.
	Level float64
}

// Chart is a line chart with a logarithmic x axis (sizes grow tenfold).
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

// SVG writes the chart.
func (c Chart) SVG(w io.Writer) error {
	const width, height, left, right, top, bottom = 640.0, 360.0, 70.0, 20.0, 40.0, 90.0
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if p[0] > 0 {
				xmin, xmax = math.Min(xmin, p[0]), math.Max(xmax, p[0])
			}
			ymax = math.Max(ymax, p[1])
		}
		ymax = math.Max(ymax, s.Level)
	}
	if math.IsInf(xmin, 0) {
		return fmt.Errorf("chart %q has no points", c.Title)
	}
	lx0, lx1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
	if lx1 == lx0 {
		lx1++
	}
	ymax = niceCeil(ymax * 1.05)
	px := func(x float64) float64 { return left + (math.Log10(x)-lx0)/(lx1-lx0)*(width-left-right) }
	py := func(y float64) float64 { return top + (1-y/ymax)*(height-top-bottom) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n", width/2, html.EscapeString(c.Title))
	// Axes, grid and ticks.
	fmt.Fprintf(&b, `<g stroke="#ccc">`)
	for e := lx0; e <= lx1; e++ {
		x := left + (e-lx0)/(lx1-lx0)*(width-left-right)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x, top, x, height-bottom)
	}
	for i := 0; i <= 4; i++ {
		y := py(ymax * float64(i) / 4)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, y, width-right, y)
	}
	fmt.Fprintf(&b, "</g>\n")
	for e := lx0; e <= lx1; e++ {
		x := left + (e-lx0)/(lx1-lx0)*(width-left-right)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, height-bottom+16, shortCount(math.Pow(10, e)))
	}
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(v)+4, shortValue(v))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (left+width-right)/2, height-bottom+34, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (top+height-bottom)/2, html.EscapeString(c.YLabel))
	// Lines, and the legend below the axis.
	for i, s := range c.Series {
		color := palette[i%len(palette)]
		if len(s.Points) == 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`+"\n", left, py(s.Level), width-right, py(s.Level), color)
		} else {
			var pts []string
			for _, p := range s.Points {
				if p[0] > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
				}
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
			for _, p := range pts {
				x, y, _ := strings.Cut(p, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, x, y, color)
			}
			b.WriteString("\n")
		}
		lx, ly := left+float64(i%2)*280, height-bottom+56+float64(i/2)*16
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, lx, ly-4, lx+20, ly-4, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+26, ly, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func shortCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

func shortValue(v float64) string {
	if v >= 100 || v == 0 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
