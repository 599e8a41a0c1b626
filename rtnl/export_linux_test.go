package rtnl

// UnmarshalLink decodes an RTM_NEWLINK payload (struct ifinfomsg and its
// attributes) the way Conn decodes link replies, for the fuzz target,
// benchmarks and decoder tests of package rtnl_test.
func UnmarshalLink(b []byte) (*Link, error) {
	l := new(Link)
	if err := l.unmarshal(b); err != nil {
		return nil, err
	}
	return l, nil
}
