//! A line chart as inline SVG: one series, axes with five ticks each, no fonts or scripts, so
//! the page needs nothing from the network to show it.

/// Numbers as a chart labels them: short, and exact enough to read.
pub fn label(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs();
    if !(1e-3..1e5).contains(&magnitude) {
        return format!("{x:.2e}");
    }
    let text = format!("{x:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG of `points` (step, value), titled `title`, with the point at step `best` marked.
pub fn chart(title: &str, points: &[(u64, f32)], best: Option<u64>) -> String {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 28.0;
    const BOTTOM: f64 = 36.0;
    let finite: Vec<(f64, f64)> =
        points.iter().filter(|(_, v)| v.is_finite()).map(|&(s, v)| (s as f64, v as f64)).collect();
    let (x0, x1) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x0, x1) = if finite.is_empty() {
        (0.0, 1.0)
    } else if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 1.0, x1 + 1.0)
    };
    let (y0, y1) = if finite.is_empty() {
        (0.0, 1.0)
    } else if y1 > y0 {
        (y0, y1)
    } else {
        (y0 - y0.abs().max(1.0) * 0.5, y1 + y1.abs().max(1.0) * 0.5)
    };
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"curve\" data-tag=\"{t}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\">",
        t = escape(title)
    );
    svg.push_str(&format!("<title>{}</title>", escape(title)));
    svg.push_str(&format!(
        "<text x=\"{LEFT}\" y=\"18\" font-size=\"13\" font-family=\"sans-serif\">{}</text>",
        escape(title)
    ));
    svg.push_str(&format!(
        "<path d=\"M{LEFT} {TOP}V{b}H{r}\" fill=\"none\" stroke=\"#888\" stroke-width=\"1\"/>",
        b = H - BOTTOM,
        r = W - RIGHT
    ));
    for i in 0..5 {
        let f = i as f64 / 4.0;
        let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\" text-anchor=\"middle\">{}</text>",
            px(x),
            H - BOTTOM + 14.0,
            label(x.round())
        ));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            py(y) + 3.0,
            label(y)
        ));
    }
    if !finite.is_empty() {
        let path: Vec<String> = finite.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        svg.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>",
            path.join(" ")
        ));
    }
    if let Some(&(x, y)) = best.and_then(|b| finite.iter().find(|p| p.0 == b as f64)) {
        svg.push_str(&format!(
            "<circle class=\"best\" data-step=\"{b}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#d62728\"><title>best: step {b}, {}</title></circle>",
            px(x),
            py(y),
            label(y),
            b = x as u64
        ));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\" fill=\"#d62728\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">best, step {}</text>",
            px(x) + 6.0,
            py(y) - 6.0,
            x as u64
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short() {
        assert_eq!(label(0.0), "0");
        assert_eq!(label(1000.0), "1000");
        assert_eq!(label(0.123456), "0.1235");
        assert_eq!(label(2.5e-7), "2.50e-7");
    }

    #[test]
    fn a_chart_has_one_point_per_value() {
        let svg = chart("loss & <more>", &[(0, 1.0), (10, 0.5), (20, 0.25)], None);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("loss &amp; &lt;more&gt;"));
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 3);
        assert!(chart("flat", &[(5, 2.0)], None).contains("<polyline"));
        assert!(!chart("empty", &[], None).contains("<polyline"));
        let marked = chart("eval/average_loss", &[(10, 0.5), (20, 0.25), (30, 0.3)], Some(20));
        assert_eq!(marked.matches("class=\"best\" data-step=\"20\"").count(), 1);
        assert!(!chart("eval/average_loss", &[(10, 0.5)], Some(20)).contains("class=\"best\""));
    }
}
