package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"

	"github.com/latch-dev/latch/experience"
)

func (c *cli) userCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users"}

	var username, email, phone, name, passwordFile string
	var passwordStdin, forceReplace bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a user, optionally with a password",
		Long: `Create a user. The password is read from --password-file or standard input
(--password-stdin), never from a flag, so it does not end up in shell history.`,
		Args: cobra.NoArgs,
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			password, err := readSecret(cmd.InOrStdin(), passwordFile, passwordStdin)
			if err != nil {
				return err
			}
			in := experience.NewUser{Password: password, Temporary: forceReplace}
			for flag, dst := range map[string]**string{"username": &in.Username, "email": &in.Email, "phone": &in.Phone, "name": &in.Name} {
				if cmd.Flags().Changed(flag) {
					v, _ := cmd.Flags().GetString(flag)
					*dst = &v
				}
			}
			user, err := svc.Engine.CreateUser(ctxOf(cmd), in)
			if err != nil {
				return err
			}
			return c.print(user, func(w io.Writer) {
				fmt.Fprintf(w, "user_id: %s\n", user.ID)
			})
		}),
	}
	create.Flags().StringVar(&username, "username", "", "username")
	create.Flags().StringVar(&email, "email", "", "primary email")
	create.Flags().StringVar(&phone, "phone", "", "primary phone number (international format)")
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().StringVar(&passwordFile, "password-file", "", "read the password from this file")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	create.Flags().BoolVar(&forceReplace, "force-replace", false, "the password is temporary: the user must change it at first sign-in")
	cmd.AddCommand(create)
	return cmd
}

// readSecret reads a one-line secret from a file or stdin ("" when neither
// is asked for).
func readSecret(stdin io.Reader, path string, fromStdin bool) (string, error) {
	var raw []byte
	var err error
	switch {
	case path != "" && fromStdin:
		return "", fmt.Errorf("use --password-file or --password-stdin, not both")
	case path != "":
		raw, err = os.ReadFile(path)
	case fromStdin:
		raw, err = io.ReadAll(io.LimitReader(stdin, 4096))
	default:
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	s := strings.TrimRight(string(raw), "\r\n")
	if s == "" {
		return "", fmt.Errorf("the password is empty")
	}
	return s, nil
}
