//! The methods that ask the user: keyboard-interactive and password, as OpenSSH asks (see
//! [`super::auth`]), and the question itself, off the async threads.

use std::time::Instant;

use russh::MethodKind;
use russh::client::{AuthResult, KeyboardInteractiveAuthResponse};

use super::auth::{Attempt, AuthError, Method, Outcome, PROMPT_TRIES};
use super::authenticator::{Authenticator, Step};

impl Authenticator<'_> {
    /// One question for the prompter, off the async worker threads (a terminal read blocks).
    pub(super) async fn ask(&self, prompt: String, echo: bool) -> std::io::Result<String> {
        let prompter = self.prompter.clone();
        tokio::task::spawn_blocking(move || prompter.ask(&prompt, echo))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// Ctrl-C at a question ends authentication (and the command) at once.
    pub(super) fn interrupted(&self, error: &std::io::Error) -> Result<(), AuthError> {
        if error.kind() == std::io::ErrorKind::Interrupted {
            return Err(AuthError::Interrupted {
                user: self.plan.user.clone(),
                host: self.host.clone(),
            });
        }
        Ok(())
    }

    /// `(user@host) `, as OpenSSH prefixes keyboard-interactive questions, so the questions of a jump
    /// hop and of the target can be told apart.
    fn asker(&self) -> String {
        format!("({}@{}) ", self.plan.user, self.host)
    }

    /// A request sent after the user answered a question: when the server closed meanwhile, remember
    /// how long the question was on the screen (sshd's LoginGraceTime ends logins that take too long).
    fn after_prompt<T>(
        &mut self,
        asked_at: Instant,
        result: Result<T, russh::Error>,
    ) -> Result<T, AuthError> {
        if let Err(russh::Error::Disconnect | russh::Error::RecvError | russh::Error::SendError) =
            &result
        {
            self.closed_at_prompt = Some(asked_at.elapsed());
        }
        Ok(result?)
    }

    /// keyboard-interactive, tried again after a refusal while the server allows it, up to
    /// [`PROMPT_TRIES`] times.
    pub(super) async fn keyboard_interactive(&mut self) -> Result<Step, AuthError> {
        for try_number in 1..=PROMPT_TRIES {
            if !self.allows(MethodKind::KeyboardInteractive) {
                return Ok(Step::Continue);
            }
            if try_number > 1 {
                self.prompter
                    .instructions("Permission denied, please try again.");
            }
            match self.keyboard_interactive_once().await? {
                Some(step) => return Ok(step),
                None => continue,
            }
        }
        Ok(Step::Continue)
    }

    /// One keyboard-interactive exchange: `None` when the server refused the answers.
    async fn keyboard_interactive_once(&mut self) -> Result<Option<Step>, AuthError> {
        let mut response = self
            .handle
            .authenticate_keyboard_interactive_start(&self.plan.user, None)
            .await?;
        let mut answered: Vec<String> = Vec::new();
        let mut asked_at = None;
        let mut rounds = 0;
        loop {
            let attempt = Attempt::new(
                Method::KeyboardInteractive,
                "keyboard-interactive",
                Outcome::Refused,
            )
            .answered(answered.clone());
            match response {
                KeyboardInteractiveAuthResponse::Success => {
                    self.attempts.push(Attempt {
                        outcome: Outcome::Accepted,
                        ..attempt
                    });
                    return Ok(Some(Step::Done));
                }
                KeyboardInteractiveAuthResponse::Failure {
                    remaining_methods,
                    partial_success,
                } => {
                    let result = AuthResult::Failure {
                        remaining_methods,
                        partial_success,
                    };
                    let step = self.settle(attempt, result);
                    if self.closed
                        && let Some(asked_at) = asked_at
                    {
                        self.closed_at_prompt = Some(Instant::elapsed(&asked_at));
                    }
                    if partial_success {
                        // Another method is required; keyboard-interactive may be asked for again.
                        return Box::pin(self.after_partial()).await.map(Some);
                    }
                    if self.closed || answered.is_empty() {
                        return Ok(Some(step));
                    }
                    return Ok(None);
                }
                KeyboardInteractiveAuthResponse::InfoRequest {
                    name,
                    instructions,
                    prompts,
                } => {
                    rounds += 1;
                    if rounds > 20 {
                        let outcome = Outcome::NotTried("gave up after 20 rounds".into());
                        self.attempts.push(Attempt { outcome, ..attempt });
                        return Ok(Some(Step::Continue));
                    }
                    for text in [name, instructions] {
                        if !text.trim().is_empty() {
                            self.prompter.instructions(text.trim_end());
                        }
                    }
                    // An empty round (no prompts) is answered with no responses, or the server waits.
                    let mut answers = Vec::with_capacity(prompts.len());
                    let round_asked_at = Instant::now();
                    asked_at = Some(round_asked_at);
                    for prompt in &prompts {
                        let question = format!("{}{}", self.asker(), prompt.prompt);
                        match self.ask(question, prompt.echo).await {
                            Ok(answer) => answers.push(answer),
                            Err(e) => {
                                self.interrupted(&e)?;
                                let outcome = Outcome::NotTried(format!(
                                    "the server asked {:?}, and there is no terminal to answer on ({e})",
                                    prompt.prompt
                                ));
                                self.attempts.push(Attempt { outcome, ..attempt });
                                return Ok(Some(Step::Continue));
                            }
                        }
                        answered.push(prompt.prompt.clone());
                    }
                    let sent = self
                        .handle
                        .authenticate_keyboard_interactive_respond(answers)
                        .await;
                    response = match self.after_prompt(round_asked_at, sent) {
                        Ok(response) => response,
                        Err(e) => {
                            let attempt = Attempt::new(
                                Method::KeyboardInteractive,
                                "keyboard-interactive",
                                Outcome::Closed,
                            );
                            self.attempts.push(attempt.answered(answered));
                            return Err(e);
                        }
                    };
                }
            }
        }
    }

    /// After a partial success, continue with whatever the server still requires.
    async fn after_partial(&mut self) -> Result<Step, AuthError> {
        if self.allows(MethodKind::KeyboardInteractive)
            && let Step::Done = self.keyboard_interactive().await?
        {
            return Ok(Step::Done);
        }
        self.password().await
    }

    /// The password, asked up to [`PROMPT_TRIES`] times while the server allows it.
    pub(super) async fn password(&mut self) -> Result<Step, AuthError> {
        for try_number in 1..=PROMPT_TRIES {
            if !self.allows(MethodKind::Password) {
                return Ok(Step::Continue);
            }
            if try_number > 1 {
                self.prompter
                    .instructions("Permission denied, please try again.");
            }
            let prompt = format!("{}@{}'s password: ", self.plan.user, self.host);
            let asked_at = Instant::now();
            let password = match self.ask(prompt.clone(), false).await {
                Ok(password) => password,
                Err(e) => {
                    self.interrupted(&e)?;
                    let outcome = Outcome::NotTried("no terminal to ask on".into());
                    self.attempts
                        .push(Attempt::new(Method::Password, "password", outcome));
                    return Ok(Step::Continue);
                }
            };
            let attempt =
                Attempt::new(Method::Password, "password", Outcome::Refused).answered(vec![prompt]);
            let sent = self
                .handle
                .authenticate_password(&self.plan.user, password)
                .await;
            let result = match self.after_prompt(asked_at, sent) {
                Ok(result) => result,
                Err(e) => {
                    self.attempts.push(Attempt {
                        outcome: Outcome::Closed,
                        ..attempt
                    });
                    return Err(e);
                }
            };
            if let Step::Done = self.settle(attempt, result) {
                return Ok(Step::Done);
            }
            if self.closed {
                self.closed_at_prompt = Some(asked_at.elapsed());
                break;
            }
        }
        Ok(Step::Continue)
    }
}
