"""Jobs: one library call per thing a user asks for (segment a file...), composing io/
(plain files), gis/ (georeferenced files) and inference/ (models). cli/ only parses flags
into these calls."""
