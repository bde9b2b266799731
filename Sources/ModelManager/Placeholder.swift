enum _PlaceholderModelManager {}
