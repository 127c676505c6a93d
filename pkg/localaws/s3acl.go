package localaws

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// Object ACLs are kept as S3 sets them: the canned ACL of the write (x-amz-acl), or the explicit grants
// of x-amz-grant-* headers or a PutObjectAcl document. GetObjectAcl returns the grants they stand for,
// so a test can see that a writer sent bucket-owner-full-control.

var s3CannedACLs = map[string]bool{
	"private": true, "public-read": true, "public-read-write": true, "authenticated-read": true,
	"aws-exec-read": true, "bucket-owner-read": true, "bucket-owner-full-control": true,
}

var s3GrantHeaders = map[string]string{
	"x-amz-grant-read":         "READ",
	"x-amz-grant-write":        "WRITE",
	"x-amz-grant-read-acp":     "READ_ACP",
	"x-amz-grant-write-acp":    "WRITE_ACP",
	"x-amz-grant-full-control": "FULL_CONTROL",
}

const (
	s3AllUsers           = "http://acs.amazonaws.com/groups/global/AllUsers"
	s3AuthenticatedUsers = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
)

// s3ACLFromHeaders reads the ACL a write asks for: a canned ACL (default private) or explicit grants.
func s3ACLFromHeaders(h http.Header) (string, []s3Grant, error) {
	var grants []s3Grant
	for k, vs := range h {
		perm, ok := s3GrantHeaders[strings.ToLower(k)]
		if !ok {
			continue
		}
		for _, v := range vs {
			g, err := s3ParseGrantees(v, perm)
			if err != nil {
				return "", nil, err
			}
			grants = append(grants, g...)
		}
	}
	acl := strings.TrimSpace(h.Get("X-Amz-Acl"))
	switch {
	case acl != "" && len(grants) > 0:
		return "", nil, &Error{Code: "InvalidRequest", Status: 400, Message: "Specifying both Canned ACLs and Header Grants is not allowed"}
	case len(grants) > 0:
		return "", grants, nil
	case acl == "":
		return "private", nil, nil
	case !s3CannedACLs[acl]:
		return "", nil, s3ErrInvalidArgument(fmt.Sprintf("The canned ACL %q is not valid for an object.", acl))
	}
	return acl, nil, nil
}

// s3ParseGrantees parses `id="…", uri="…", emailAddress="…"` of an x-amz-grant-* header.
func s3ParseGrantees(v, perm string) ([]s3Grant, error) {
	var out []s3Grant
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if !ok || val == "" {
			return nil, s3ErrInvalidArgument(fmt.Sprintf("Invalid grantee %q: use id=\"…\", uri=\"…\" or emailAddress=\"…\".", part))
		}
		g := s3Grant{Permission: perm}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "id":
			g.ID = val
		case "uri":
			g.URI = val
		case "emailaddress":
			g.Email = val
		default:
			return nil, s3ErrInvalidArgument(fmt.Sprintf("Invalid grantee type %q: use id, uri or emailAddress.", k))
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, s3ErrInvalidArgument("A grant header names no grantee.")
	}
	return out, nil
}

// grants returns the grants an object's ACL stands for; canonical user IDs are account IDs here.
// bucket-owner-full-control lists the bucket owner's grant even when the owner wrote the object.
func (om *s3ObjectMeta) grants(bucketOwner string) []s3Grant {
	if om.ACL == "" {
		return om.Grants
	}
	out := []s3Grant{{ID: om.Owner, Permission: "FULL_CONTROL"}}
	switch om.ACL {
	case "public-read":
		out = append(out, s3Grant{URI: s3AllUsers, Permission: "READ"})
	case "public-read-write":
		out = append(out, s3Grant{URI: s3AllUsers, Permission: "READ"}, s3Grant{URI: s3AllUsers, Permission: "WRITE"})
	case "authenticated-read":
		out = append(out, s3Grant{URI: s3AuthenticatedUsers, Permission: "READ"})
	case "bucket-owner-read":
		out = append(out, s3Grant{ID: bucketOwner, Permission: "READ"})
	case "bucket-owner-full-control":
		out = append(out, s3Grant{ID: bucketOwner, Permission: "FULL_CONTROL"})
	}
	return out
}

type s3GranteeXML struct {
	XMLNSXSI     string `xml:"xmlns:xsi,attr"`
	Type         string `xml:"xsi:type,attr"`
	ID           string `xml:"ID,omitempty"`
	URI          string `xml:"URI,omitempty"`
	EmailAddress string `xml:"EmailAddress,omitempty"`
}

type s3GrantXML struct {
	Grantee    s3GranteeXML `xml:"Grantee"`
	Permission string       `xml:"Permission"`
}

type s3OwnerXML struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName,omitempty"`
}

func s3GrantToXML(g s3Grant) s3GrantXML {
	x := s3GrantXML{Permission: g.Permission}
	x.Grantee.XMLNSXSI = "http://www.w3.org/2001/XMLSchema-instance"
	switch {
	case g.URI != "":
		x.Grantee.Type, x.Grantee.URI = "Group", g.URI
	case g.Email != "":
		x.Grantee.Type, x.Grantee.EmailAddress = "AmazonCustomerByEmail", g.Email
	default:
		x.Grantee.Type, x.Grantee.ID = "CanonicalUser", g.ID
	}
	return x
}

func (s *S3Server) getObjectACL(req *s3Req) error {
	b, bs, err := s.objectAccess(req, "s3:GetObjectAcl")
	if err != nil {
		return err
	}
	om, ok := bs.get(req.key)
	if !ok {
		return s.missingObject(req, &b)
	}
	var grants []s3GrantXML
	for _, g := range om.grants(b.Account) {
		grants = append(grants, s3GrantToXML(g))
	}
	s3WriteXML(req.w, http.StatusOK, struct {
		XMLName xml.Name     `xml:"AccessControlPolicy"`
		Xmlns   string       `xml:"xmlns,attr"`
		Owner   s3OwnerXML   `xml:"Owner"`
		Grants  []s3GrantXML `xml:"AccessControlList>Grant"`
	}{Xmlns: s3XMLNS, Owner: s3OwnerXML{ID: om.Owner}, Grants: grants})
	return nil
}

func (s *S3Server) putObjectACL(req *s3Req) error {
	b, bs, err := s.objectAccess(req, "s3:PutObjectAcl")
	if err != nil {
		return err
	}
	if _, ok := bs.get(req.key); !ok {
		return s.missingObject(req, &b)
	}
	acl, grants := "", []s3Grant(nil)
	if s3SetsACL(req.r.Header) {
		if acl, grants, err = s3ACLFromHeaders(req.r.Header); err != nil {
			return err
		}
	} else {
		body, err := s.readSmallBody(req, 1<<20, true)
		if err != nil {
			return err
		}
		if len(body) == 0 {
			return &Error{Code: "MissingSecurityHeader", Status: 400, Message: "PutObjectAcl needs an x-amz-acl or x-amz-grant-* header, or an AccessControlPolicy document."}
		}
		var doc struct {
			Grants []struct {
				Grantee struct {
					ID           string `xml:"ID"`
					URI          string `xml:"URI"`
					EmailAddress string `xml:"EmailAddress"`
				} `xml:"Grantee"`
				Permission string `xml:"Permission"`
			} `xml:"AccessControlList>Grant"`
		}
		if err := xml.Unmarshal(body, &doc); err != nil {
			return s3ErrMalformedXML(err.Error())
		}
		for _, g := range doc.Grants {
			switch g.Permission {
			case "READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL":
			default:
				return s3ErrMalformedXML(fmt.Sprintf("unknown permission %q", g.Permission))
			}
			grants = append(grants, s3Grant{ID: g.Grantee.ID, URI: g.Grantee.URI, Email: g.Grantee.EmailAddress, Permission: g.Permission})
		}
	}
	err = s.st.replaceMeta(bs, req.key, func(om s3ObjectMeta) (s3ObjectMeta, error) {
		om.ACL, om.Grants = acl, grants
		return om, nil
	})
	if err != nil {
		return err
	}
	req.w.WriteHeader(http.StatusOK)
	return nil
}
