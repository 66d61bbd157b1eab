"""The offline corpus and the recipe that build the bundled model (`dgterm train`)."""
