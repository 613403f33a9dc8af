"""Operations: every change the surfaces and the workers make, in one place."""
