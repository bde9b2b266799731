import Testing

@testable import ModelSource

/// User information in a URL is hidden whole, whatever characters it holds, and kept out of the URL libgit2
/// stores.
struct RemoteURLTests {
    @Test(arguments: [
        ("https://bot:it's@host/m.git", "https://<redacted>@host/m.git"),
        ("cannot fetch 'https://u:p\"w@host/m.git': 401", "cannot fetch 'https://<redacted>@host/m.git': 401"),
        ("https://u:a/b@c@host/m.git and ssh://git@h2/x", "https://<redacted>@host/m.git and ssh://<redacted>@h2/x"),
        ("https://host/m.git", "https://host/m.git"),
        ("no url here", "no url here"),
    ])
    func redactsTheWholeUserInformation(text: String, redacted: String) {
        #expect(RemoteURL.redact(text) == redacted)
    }

    @Test func credentialsLeaveTheURL() {
        let remote = RemoteURL("https://deploy:p%40ss'word@git.example/team/models.git")
        #expect(remote.url == "https://deploy@git.example/team/models.git")
        #expect(remote.username == "deploy")
        #expect(remote.password == "p@ss'word")
        #expect(RemoteURL("git@host:team/m.git").url == "git@host:team/m.git")
        #expect(RemoteURL("ssh://git@host/m.git").url == "ssh://git@host/m.git")
        #expect(RemoteURL("https://:token@host/m.git").url == "https://host/m.git")
        #expect(RemoteURL("/srv/models.git").password == nil)
    }
}
