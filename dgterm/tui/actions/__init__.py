"""The app's actions, grouped by what they touch (mixed into the App)."""
