"""Features from cached uint8 photos: pixel vectors, polar warp, flip/rotate expansion,
colour and texture."""
