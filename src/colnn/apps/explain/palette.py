"""The walk's colours, shared by the figure (:mod:`.plot`) and the page (:mod:`.html`).

Light fills so the black numbers stay readable; the first three channel colours
are the tutorial's (orange, green, blue), then a cycle of further colours.
"""

CHANNEL_COLORS = ("#f5a04a", "#6cc26c", "#5b9bd5", "#b48ad6", "#e377a8", "#4fc1c1")
# Convolution outputs are per filter, not per input channel: a palette of their own.
FILTER_COLORS = ("#c9c0f0", "#f0c0d8", "#bfe6d3", "#e8dcae")
PADDING_COLOR = "#d9d9d9"
