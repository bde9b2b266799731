enum _PlaceholderAutoServeApp {}
