package experience

// Small helpers shared across the engine.

func boolPtr(b bool) *bool { return &b }

func trueOrNil(b bool) *bool {
	if b {
		return &b
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
