package experience

import (
	"context"
	"net/http"

	"github.com/latch-dev/latch/fault"
)

// eventOpen says whether settings allow an interaction event.
func eventOpen(s Settings, event string) bool {
	switch event {
	case EventSignInFlow:
		return s.SignInMode != ModeRegister
	case EventRegisterFlow:
		return s.SignInMode != ModeSignIn
	case EventForgotPasswordFlow:
		return s.ForgotPassword.Email || s.ForgotPassword.Phone
	}
	return false
}

func validEvent(event string) bool {
	return event == EventSignInFlow || event == EventRegisterFlow || event == EventForgotPasswordFlow
}

func errEventNotEnabled(event string) *fault.Error {
	return fault.New(CodeEventNotEnabled, http.StatusForbidden, "The %s interaction is not enabled in the sign-in experience settings.", event)
}

// StartInteraction begins a new interaction for clientID and returns its
// handle (for the cookie and header).
func (e *Engine) StartInteraction(ctx context.Context, clientID, event string) (string, error) {
	return e.startInteraction(ctx, clientID, event, false)
}

// StartHostedInteraction is StartInteraction for the hosted pages of an
// authorization request: the interaction is marked Hosted.
func (e *Engine) StartHostedInteraction(ctx context.Context, clientID, event string) (string, error) {
	return e.startInteraction(ctx, clientID, event, true)
}

// HostedInteraction reports whether the live interaction behind handle
// (clientID's) was started for the hosted pages.
func (e *Engine) HostedInteraction(ctx context.Context, handle, clientID string) (bool, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return false, err
	}
	return in.Hosted, nil
}

func (e *Engine) startInteraction(ctx context.Context, clientID, event string, hosted bool) (string, error) {
	if !validEvent(event) {
		return "", fault.Invalid(fault.Detail{Field: "interactionEvent", Message: "must be SignIn, Register or ForgotPassword"})
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return "", err
	}
	if !eventOpen(settings, event) {
		return "", errEventNotEnabled(event)
	}
	return e.interactions.create(ctx, clientID, event, hosted)
}

// InteractionClient returns the client a live interaction belongs to: the
// handle alone authorises Experience API calls (seed 004), and the client
// stored with the interaction is the one they act for. A caller that also
// names a client (a Bearer token) must name the owner; any other is told
// the interaction does not exist.
func (e *Engine) InteractionClient(ctx context.Context, handle, clientID string) (string, error) {
	owner, err := e.interactions.owner(ctx, handle)
	if err != nil {
		return "", err
	}
	if clientID != "" && clientID != owner {
		return "", errInteractionNotFound()
	}
	return owner, nil
}

// EndInteraction deletes the interaction behind handle if it is clientID's
// (re-initialising clears the previous interaction, seed 004); an unknown
// handle or another client's interaction is left alone.
func (e *Engine) EndInteraction(ctx context.Context, handle, clientID string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		if fault.Is(err, CodeInteractionNotFound) {
			return nil
		}
		return err
	}
	return e.interactions.delete(ctx, in)
}

// Interaction returns the sanitised state of an interaction.
func (e *Engine) Interaction(ctx context.Context, handle, clientID string) (*InteractionView, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return nil, err
	}
	return in.view(), nil
}

// SetInteractionEvent switches between SignIn and Register, keeping the
// verification records.
func (e *Engine) SetInteractionEvent(ctx context.Context, handle, clientID, event string) error {
	if !validEvent(event) {
		return fault.Invalid(fault.Detail{Field: "interactionEvent", Message: "must be SignIn, Register or ForgotPassword"})
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if in.Event == EventForgotPasswordFlow || event == EventForgotPasswordFlow {
			if in.Event == event {
				return nil
			}
			return fault.New(CodeNotForForgotPassword, http.StatusBadRequest,
				"Only SignIn and Register are interchangeable; a ForgotPassword interaction keeps its event.")
		}
		if !eventOpen(settings, event) {
			return errEventNotEnabled(event)
		}
		if in.Event != event && in.UserID != "" {
			// An identified user belongs to the flow that identified them.
			return fault.New(CodeIdentityConflict, http.StatusBadRequest, "The interaction already identified a user; start a new one.")
		}
		in.Event = event
		return nil
	})
	return err
}
