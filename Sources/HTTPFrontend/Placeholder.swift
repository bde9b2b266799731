enum _PlaceholderHTTPFrontend {}
