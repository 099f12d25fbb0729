"""The activity chart as inline SVG geometry: no chart library, no CDN (the network is closed)."""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.statistics import Series

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28  # margins for the axis labels
COLOURS = {"sent": "#417690", "opened": "#2e9e5b", "clicked": "#d9822b"}
LABELS = {"sent": "Sent", "opened": "Opened", "clicked": "Clicked"}
# Beyond this many buckets the dots and their tooltips would only blur the lines.
MAX_DOTS = 120


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Line:
    key: str
    label: str
    colour: str
    points: str  # the SVG polyline's "x,y x,y ..."
    dots: list[Dot]
    total: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    unit: str
    y_max: int
    lines: list[Line]
    x_labels: list[tuple[float, str]]
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int

    @property
    def y_mid(self) -> float:
        return (self.plot_top + self.plot_bottom) / 2


def activity_chart(series: Series) -> Chart | None:
    if series.is_empty:
        return None
    y_max = max(1, *(max(values) for values in series.counts.values()))
    count = len(series.buckets)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return round(LEFT + (plot_width * index / (count - 1) if count > 1 else plot_width / 2), 1)

    def y(value: int) -> float:
        return round(TOP + plot_height * (1 - value / y_max), 1)

    fmt = "%Y-%m-%d %H:00" if series.unit == "hour" else "%Y-%m-%d"
    lines = []
    for key, values in series.counts.items():
        # A single bucket is a level line across the plot, not an invisible point.
        ends = [(x(0) - plot_width / 2, y(values[0])), (x(0) + plot_width / 2, y(values[0]))]
        dots = [
            Dot(x(i), y(v), f"{series.buckets[i]:{fmt}}: {v} {LABELS[key].lower()}")
            for i, v in enumerate(values)
        ]
        lines.append(
            Line(
                key=key,
                label=LABELS[key],
                colour=COLOURS[key],
                points=" ".join(
                    f"{px},{py}" for px, py in (ends if count == 1 else [(d.x, d.y) for d in dots])
                ),
                dots=dots if count <= MAX_DOTS else [],
                total=sum(values),
            )
        )
    x_labels = [(x(i), f"{series.buckets[i]:{fmt}}") for i in sorted({0, count - 1})]
    return Chart(
        WIDTH,
        HEIGHT,
        series.unit,
        y_max,
        lines,
        x_labels,
        LEFT,
        WIDTH - RIGHT,
        TOP,
        HEIGHT - BOTTOM,
    )
